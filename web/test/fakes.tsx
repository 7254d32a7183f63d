// Fakes for the unit level: an API answered by handlers (the real API is tested end to end), an event stream
// the test pushes batches into, and the app rendered at a path.
import { QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, useLocation } from "react-router";
import { vi } from "vitest";

import { AppRoutes, makeQueryClient } from "../src/App";
import type { Job, Me, Role } from "../src/lib/types";

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: Headers;
}

type Answer = unknown; // a body, or { status, body, headers }
type Handler = (call: Call) => Answer;

export class FakeApi {
  readonly calls: Call[] = [];
  private readonly handlers = new Map<string, Handler>();

  /** `on("GET /api/jobs", call => ({ body: {...} }))`; a plain value is the body of a 200. */
  on(route: string, handler: Handler | object): this {
    this.handlers.set(route, typeof handler === "function" ? (handler as Handler) : () => handler);
    return this;
  }

  callsTo(route: string): Call[] {
    const [method, path] = route.split(" ");
    return this.calls.filter((call) => call.method === method && call.path === path);
  }

  readonly fetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input, "http://dashboard.test");
    const method = (init?.method ?? "GET").toUpperCase();
    const call: Call = {
      method,
      path: url.pathname,
      query: url.searchParams,
      body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
      headers: new Headers(init?.headers),
    };
    this.calls.push(call);
    const handler = this.handlers.get(`${method} ${url.pathname}`);
    if (!handler) return Promise.resolve(json(404, { error: `no fake for ${method} ${url.pathname}` }));
    const answer = handler(call);
    if (answer && typeof answer === "object" && ("status" in answer || "body" in answer)) {
      const { status = 200, body = null, headers } = answer as { status?: number; body?: unknown; headers?: Record<string, string> };
      return Promise.resolve(json(status, body, headers));
    }
    return Promise.resolve(json(200, answer));
  };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

export function fakeApi(role: Role | null = "admin"): FakeApi {
  const api = new FakeApi();
  const me: Me | null = role ? { user: `a-${role}`, role, csrf_token: "csrf-123" } : null;
  api.on("GET /api/auth/me", () => (me ? me : { status: 401, body: { error: "not signed in" } }));
  vi.stubGlobal("fetch", api.fetch);
  return api;
}

export class FakeEventSource {
  static readonly instances: FakeEventSource[] = [];
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;
  readonly url: string;
  readyState = FakeEventSource.CONNECTING;
  onopen: ((event: Event) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  private readonly listeners = new Map<string, ((event: MessageEvent<string>) => void)[]>();

  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, listener: (event: MessageEvent<string>) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.readyState = FakeEventSource.CLOSED;
  }

  open(): void {
    this.readyState = FakeEventSource.OPEN;
    this.onopen?.(new Event("open"));
  }

  emit(type: string, data: unknown): void {
    const event = new MessageEvent(type, { data: JSON.stringify(data) });
    this.listeners.get(type)?.forEach((listener) => listener(event));
  }

  static latest(): FakeEventSource {
    const source = FakeEventSource.instances.at(-1);
    if (!source) throw new Error("no EventSource was opened");
    return source;
  }
}

function LocationProbe() {
  const location = useLocation();
  return <output data-testid="location">{location.pathname + location.search}</output>;
}

export function renderApp(path: string) {
  const queryClient = makeQueryClient();
  queryClient.setDefaultOptions({ queries: { ...queryClient.getDefaultOptions().queries, retry: false } });
  const user = userEvent.setup();
  const view = render(
    <QueryClientProvider client={queryClient}>
      <MemoryRouter initialEntries={[path]}>
        <AppRoutes />
        <LocationProbe />
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return { ...view, user, queryClient };
}

let nextId = 1;

export function makeJob(overrides: Partial<Job> = {}): Job {
  const id = overrides.id ?? nextId++;
  return {
    id,
    queue: "default",
    target: "app.tasks.Mailer",
    method: "send",
    args: [id],
    kwargs: {},
    priority: 1,
    status: "pending",
    attempts: 0,
    max_attempts: 3,
    parent_id: null,
    scheduled_at: "2024-05-01T10:00:00.000000Z",
    created_at: "2024-05-01T10:00:00.000000Z",
    started_at: null,
    finished_at: null,
    timeout: null,
    error_type: null,
    error_message: null,
    result: null,
    sensitive: false,
    cancel_requested: false,
    ...overrides,
  };
}
