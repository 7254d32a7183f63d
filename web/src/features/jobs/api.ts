// Jobs through the API: the list (keyset pages, cached per filter), one job, row actions and bulk runs, and how
// the event stream's changes land in the cache.
import {
  type InfiniteData,
  type QueryClient,
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
} from "@tanstack/react-query";

import { ApiError, api } from "../../lib/api";
import type { BulkCount, BulkRun, Job, JobDetail, JobPage } from "../../lib/types";
import { type JobFilter, filterToBulk, filterToQuery, mayShowNewJob } from "./filters";

export const PAGE_SIZE = 50;

type Pages = InfiniteData<JobPage, number | null>;

export const jobsKey = (filter: JobFilter) => ["jobs", filter] as const;
export const jobKey = (id: number) => ["job", id] as const;

export function useJobs(filter: JobFilter) {
  return useInfiniteQuery({
    queryKey: jobsKey(filter),
    queryFn: ({ pageParam, signal }) =>
      api<JobPage>("/api/jobs", {
        query: { ...filterToQuery(filter), before: pageParam ?? (filter.before || null), limit: PAGE_SIZE },
        signal,
      }),
    initialPageParam: null as number | null,
    getNextPageParam: (last) => last.next ?? undefined,
    // the stream keeps loaded rows fresh; re-reading every loaded page on focus would cost a request each
    refetchOnWindowFocus: false,
    staleTime: Infinity,
  });
}

export function useJob(id: number) {
  return useQuery({
    queryKey: jobKey(id),
    queryFn: async ({ signal }) => detailOf(await api<RawDetail>(`/api/jobs/${id}`, { signal })),
    retry: (count, error) => !(error instanceof ApiError && error.status < 500) && count < 2,
  });
}

type RawDetail = Omit<JobDetail, "attempts" | "attempts_history" | "follow_ups"> & {
  attempts: number | JobDetail["attempts_history"];
  attempts_history?: JobDetail["attempts_history"];
  follow_ups?: number[];
};

/** The detail as the CLI's `jobs show --json` writes it (`attempts_history`), or with the history as `attempts`. */
export function detailOf(raw: RawDetail): JobDetail {
  const history = Array.isArray(raw.attempts) ? raw.attempts : (raw.attempts_history ?? []);
  const attempts = Array.isArray(raw.attempts) ? raw.attempts.length : raw.attempts;
  return { ...raw, attempts, attempts_history: history, follow_ups: raw.follow_ups ?? [] };
}

/** Put the stream's changed jobs into every cached list and detail: loaded rows are replaced in place; a new
 * job goes on top of a list that starts at the newest and whose filter it surely matches. */
export function upsertJobs(queryClient: QueryClient, jobs: Job[]): void {
  const byId = new Map(jobs.map((job) => [job.id, job]));
  for (const [key, data] of queryClient.getQueriesData<Pages>({ queryKey: ["jobs"] })) {
    if (!data) continue;
    const filter = key[1] as JobFilter;
    queryClient.setQueryData<Pages>(key, upsertPages(data, byId, filter));
  }
  for (const job of jobs) {
    const known = queryClient.getQueryData<JobDetail>(jobKey(job.id));
    if (!known) continue;
    queryClient.setQueryData<JobDetail>(jobKey(job.id), { ...known, ...job });
    // a new status means a new attempt or outcome: read its history again
    if (known.status !== job.status || known.attempts !== job.attempts) {
      void queryClient.invalidateQueries({ queryKey: jobKey(job.id) });
    }
  }
}

export function upsertPages(data: Pages, byId: Map<number, Job>, filter: JobFilter): Pages {
  const seen = new Set<number>();
  const pages = data.pages.map((page) => {
    if (!page.jobs.some((row) => byId.has(row.id))) return page; // keep an untouched page's identity
    const rows = page.jobs.map((row) => {
      const fresh = byId.get(row.id);
      if (!fresh) return row;
      seen.add(row.id);
      return fresh;
    });
    return { ...page, jobs: rows };
  });
  const first = pages[0];
  if (first && data.pageParams[0] === null) {
    const top = first.jobs[0]?.id ?? 0;
    const added = [...byId.values()]
      .filter((job) => !seen.has(job.id) && job.id > top && mayShowNewJob(filter, job))
      .sort((a, b) => b.id - a.id);
    if (added.length) pages[0] = { ...first, jobs: [...added, ...first.jobs] };
  }
  return { ...data, pages };
}

export type RowAction = "cancel" | "retry";

export function canCancel(job: Pick<Job, "status" | "cancel_requested">): boolean {
  return job.status === "pending" || (job.status === "running" && !job.cancel_requested);
}

export function canRetry(job: Pick<Job, "status">): boolean {
  return job.status === "failed" || job.status === "cancelled";
}

export async function jobAction(id: number, action: RowAction): Promise<Job | null> {
  const answer = await api<unknown>(`/api/jobs/${id}/${action}`, { method: "POST" });
  return jobIn(answer);
}

/** The job in an action's answer: the job itself or {"job": ...}. */
function jobIn(answer: unknown): Job | null {
  if (!answer || typeof answer !== "object") return null;
  const wrapped = (answer as { job?: unknown }).job;
  const job = (wrapped && typeof wrapped === "object" ? wrapped : answer) as Partial<Job>;
  return typeof job.id === "number" && typeof job.status === "string" ? (job as Job) : null;
}

export function useJobAction() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action }: { id: number; action: RowAction }) => jobAction(id, action),
    onSuccess: (job, { id }) => {
      if (job) upsertJobs(queryClient, [job]);
      void queryClient.invalidateQueries({ queryKey: jobKey(id) });
    },
  });
}

export function bulkCount(action: RowAction, filter: JobFilter): Promise<BulkCount> {
  return api<BulkCount>("/api/jobs/bulk", { method: "POST", body: { action, filter: filterToBulk(filter), dry_run: true } });
}

export async function bulkStart(action: RowAction, filter: JobFilter): Promise<BulkRun> {
  const answer = await api<{ run: BulkRun }>("/api/jobs/bulk", {
    method: "POST",
    body: { action, filter: filterToBulk(filter), dry_run: false },
  });
  return answer.run;
}

export function useBulkRun(runId: number | null) {
  return useQuery({
    queryKey: ["bulk", runId],
    queryFn: ({ signal }) => api<BulkRun | { run: BulkRun }>(`/api/jobs/bulk/${runId ?? 0}`, { signal }),
    select: (answer) => ("run" in answer ? answer.run : answer),
    enabled: runId !== null,
    refetchInterval: (query) => {
      const data = query.state.data;
      const run = data && "run" in data ? data.run : data;
      return run && run.status !== "running" ? false : 1000;
    },
  });
}
