// The jobs filter lives in the URL (?status=failed,running&queue=..&target=..&q=..&args=..&before=..), so a view
// can be shared and the back button works; the same filter becomes the API's query and a bulk action's filter.
import { JOB_STATUSES, type Job, type JobStatus } from "../../lib/types";

export interface JobFilter {
  status: JobStatus[];
  queue: string;
  target: string;
  q: string;
  args: string; // JSON text as typed: {"customer_id": 42}, or 42
  before: string; // start below this id (keyset): reaches any depth without paging through
}

export const EMPTY_FILTER: JobFilter = { status: [], queue: "", target: "", q: "", args: "", before: "" };

const isStatus = (value: string): value is JobStatus => (JOB_STATUSES as readonly string[]).includes(value);

export function filterFromParams(params: URLSearchParams): JobFilter {
  const status = params
    .getAll("status")
    .flatMap((value) => value.split(","))
    .map((value) => value.trim())
    .filter(isStatus);
  const before = params.get("before") ?? "";
  return {
    status: JOB_STATUSES.filter((s) => status.includes(s)), // one order, no duplicates
    queue: params.get("queue") ?? "",
    target: params.get("target") ?? "",
    q: params.get("q") ?? "",
    args: params.get("args") ?? "",
    before: /^\d+$/.test(before) ? before : "",
  };
}

export function filterToParams(filter: JobFilter): URLSearchParams {
  const params = new URLSearchParams();
  if (filter.status.length) params.set("status", filter.status.join(","));
  for (const key of ["queue", "target", "q", "args", "before"] as const) {
    const value = filter[key].trim();
    if (value) params.set(key, value);
  }
  return params;
}

/** Why the args text is no JSON, or null when it is (or is empty). */
export function argsProblem(args: string): string | null {
  if (!args.trim()) return null;
  try {
    JSON.parse(args);
    return null;
  } catch {
    return 'Arguments must be JSON, e.g. {"customer_id": 42} or 42';
  }
}

/** GET /api/jobs's query (without the page cursor). */
export function filterToQuery(filter: JobFilter): Record<string, string | readonly string[]> {
  const query: Record<string, string | readonly string[]> = {};
  if (filter.status.length) query.status = filter.status.join(",");
  for (const key of ["queue", "target", "q", "args"] as const) {
    const value = filter[key].trim();
    if (value) query[key] = value;
  }
  return query;
}

/** A bulk action's filter: the same fields in a JSON body, `args` as the JSON value itself. */
export function filterToBulk(filter: JobFilter): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (filter.status.length) body.status = filter.status;
  for (const key of ["queue", "target", "q"] as const) {
    const value = filter[key].trim();
    if (value) body[key] = value;
  }
  if (filter.args.trim() && !argsProblem(filter.args)) body.args = JSON.parse(filter.args) as unknown;
  return body;
}

export function isFiltered(filter: JobFilter): boolean {
  return filterToParams({ ...filter, before: "" }).size > 0;
}

/**
 * Would a job the stream reports belong to this view? Only what can be decided here for sure: status, queue,
 * target. A text or arguments filter is the server's to judge, so new jobs aren't added under one.
 */
export function mayShowNewJob(filter: JobFilter, job: Job): boolean {
  if (filter.before || filter.q.trim() || filter.args.trim()) return false;
  if (filter.status.length && !filter.status.includes(job.status)) return false;
  if (filter.queue.trim() && job.queue !== filter.queue.trim()) return false;
  if (filter.target.trim() && job.target !== filter.target.trim()) return false;
  return true;
}
