// Fakes for the unit level: an API answered by handlers (the real API is tested end to end), an event stream
// the test pushes batches into, and the app rendered at a path.
import { QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, useLocation } from "react-router";
import { vi } from "vitest";

import { AppRoutes, makeQueryClient } from "../src/App";
import type { Job, Me, Role } from "../src/lib/types";

export { FakeEventSource } from "./stubs";

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: Headers;
}

/** An answer other than a 200 with a body: `reply(401, { error: "..." })`. */
export class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown = null,
    readonly headers: Record<string, string> = {},
  ) {}
}

export const reply = (status: number, body: unknown = null, headers: Record<string, string> = {}) =>
  new Reply(status, body, headers);

type Answer = unknown; // a 200's body, or a Reply
type Handler = (call: Call) => Answer;

export class FakeApi {
  readonly calls: Call[] = [];
  private readonly handlers = new Map<string, Handler>();

  /** `on("GET /api/jobs", call => ({ body: {...} }))`; a plain value is the body of a 200. */
  on(route: string, handler: Handler | object | Reply): this {
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
    if (answer instanceof Reply) return Promise.resolve(json(answer.status, answer.body, answer.headers));
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
  api.on("GET /api/auth/me", () => (me ? me : reply(401, { error: "not signed in" })));
  vi.stubGlobal("fetch", api.fetch);
  return api;
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
