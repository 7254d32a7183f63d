// The one place the dashboard talks HTTP: same-origin cookies, the CSRF header on unsafe methods, JSON errors.

export class ApiError extends Error {
  readonly status: number;
  readonly retryAfterS: number | null;

  constructor(status: number, message: string, retryAfterS: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
}

// The session's CSRF token: from the login response and from GET /api/auth/me. Kept in memory only.
let csrfToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called on a 401 from any request but the login itself: the session ended (logout elsewhere, expiry). */
export function setUnauthorizedHandler(handler: (() => void) | null): void {
  onUnauthorized = handler;
}

export function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === null || value === undefined || value === "") continue;
    const items: readonly (string | number | boolean)[] = typeof value === "object" ? value : [value];
    items.forEach((item) => {
      params.append(key, String(item));
    });
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response: Response;
  try {
    response = await fetch(buildUrl(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "The server did not answer: is errands serve running?");
  }
  if (!response.ok) throw await errorOf(response, path);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

async function errorOf(response: Response, path: string): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as { error?: unknown; detail?: unknown };
    message = describe(body.error, body.detail) ?? message;
  } catch {
    // not JSON (a proxy's page): keep the status line
  }
  const retryAfter = Number(response.headers.get("Retry-After"));
  if (response.status === 401 && path !== "/api/auth/login") onUnauthorized?.();
  return new ApiError(response.status, message, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
}

function describe(error: unknown, detail: unknown): string | null {
  const head = typeof error === "string" ? error : null;
  let tail: string | null = null;
  if (typeof detail === "string") tail = detail;
  else if (Array.isArray(detail)) {
    // FastAPI's validation errors: [{loc, msg}, ...]
    tail = detail
      .map((item: { loc?: unknown[]; msg?: string }) => [item.loc?.slice(1).join("."), item.msg].filter(Boolean).join(": "))
      .join("; ");
  }
  if (head && tail && head !== tail) return `${head}: ${tail}`;
  return head ?? tail;
}

/** A list answer, whether the route sends the list itself or wraps it ({"queues": [...]}). */
export function listOf<T>(raw: unknown, key: string): T[] {
  if (Array.isArray(raw)) return raw as T[];
  if (!raw || typeof raw !== "object") return [];
  const record = raw as Record<string, unknown>;
  const value = record[key] ?? Object.values(record).find(Array.isArray);
  return Array.isArray(value) ? (value as T[]) : [];
}

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
