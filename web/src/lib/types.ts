// The API's values as the dashboard reads them (docs/api.md is the contract; a job is the CLI's `--json` form).

export const JOB_STATUSES = ["pending", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export type Role = "viewer" | "operator" | "admin";

export interface Me {
  user: string;
  role: Role;
  csrf_token: string | null; // null when signed in by an API token (it needs none)
}

export interface Job {
  id: number;
  queue: string;
  target: string;
  method: string;
  args: unknown[] | string; // a string when the job is sensitive (redacted)
  kwargs: Record<string, unknown> | string;
  priority: number;
  status: JobStatus;
  attempts: number;
  max_attempts: number;
  parent_id: number | null;
  scheduled_at: string | null;
  created_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  timeout: number | null;
  error_type: string | null;
  error_message: string | null;
  result: unknown;
  sensitive: boolean;
  cancel_requested: boolean;
}

export interface Attempt {
  number: number;
  started_at: string | null;
  finished_at: string | null;
  outcome: string | null;
  error_type: string | null;
  error_message: string | null;
  traceback: string | null;
  worker: string | null;
}

export interface JobDetail extends Job {
  attempts_history: Attempt[];
  follow_ups: number[];
}

export interface JobPage {
  jobs: Job[];
  next: number | null;
  count: number;
  count_exact: boolean;
}

export interface BulkCount {
  count: number;
  count_exact: boolean;
}

export interface BulkRun {
  id: number;
  action: "cancel" | "retry";
  status: "running" | "done" | "failed";
  total: number;
  done: number;
  skipped: number;
  error: string | null;
}

export interface FailureGroup {
  error_type: string;
  target: string;
  method: string;
  count: number;
  first_at: string;
  last_at: string;
  sample_job_id: number;
  sample_message: string | null;
}

// a count that may be capped or estimated: `exact` false says "at least" or "about"
export interface CountValue {
  value?: number; // reports.Count's name
  count?: number; // the name GET /api/stats uses (h/webobs)
  exact: boolean;
}

export interface Stats {
  by_status: Record<string, CountValue>;
  by_queue: Record<string, Record<string, CountValue>>;
  per_minute: { minute: string; completed: number; failed: number }[];
  oldest_due: Record<string, string>;
}

export interface QueueInfo {
  name: string;
  paused: boolean;
  pending: number;
  due: number;
  running: number;
  oldest_due_at: string | null;
  oldest_due_age_s: number;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  started_at: string;
  heartbeat_at: string;
}

export interface LogLine {
  id: number;
  file: string;
  line: string;
}

// each file's last lines, oldest first: plain strings (GET /api/logs), or LogLine rows
export interface Logs {
  job?: (string | LogLine)[];
  error?: (string | LogLine)[];
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  detail: string;
}
