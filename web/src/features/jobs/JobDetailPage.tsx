// /jobs/:id: one job: its arguments and result, parent and follow-ups as links, the attempts timeline with each
// attempt's error and traceback, cancel and retry. Kept fresh by the event stream.
import { useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";

import { ErrorNote, LiveIndicator, Loading, StatusBadge, Time } from "../../components/ui";
import { ApiError } from "../../lib/api";
import { useMay } from "../../lib/auth";
import { useJobEvents } from "../../lib/events";
import { duration, json, targetLabel } from "../../lib/format";
import type { Attempt, JobDetail } from "../../lib/types";
import { canCancel, canRetry, jobKey, upsertJobs, useJob, useJobAction } from "./api";

export function JobDetailPage() {
  const { id = "" } = useParams();
  const jobId = /^\d+$/.test(id) ? Number(id) : null;
  if (jobId === null) return <NotFound what={`"${id}" is no job id.`} />;
  return <JobDetailView key={jobId} id={jobId} />;
}

function NotFound({ what }: { what: string }) {
  return (
    <section className="page">
      <h1>Job not found</h1>
      <p>{what}</p>
      <Link to="/jobs">All jobs</Link>
    </section>
  );
}

function JobDetailView({ id }: { id: number }) {
  const queryClient = useQueryClient();
  const job = useJob(id);
  const canOperate = useMay("operate");
  const action = useJobAction();
  const live = useJobEvents(
    (changed) => {
      upsertJobs(queryClient, changed);
    },
    () => void queryClient.invalidateQueries({ queryKey: jobKey(id) }),
  );

  if (job.isPending) return <Loading what={`job ${id}`} />;
  if (job.error instanceof ApiError && job.error.status === 404) return <NotFound what={`There is no job ${id}.`} />;
  if (job.error) return <ErrorNote error={job.error}>Could not load job {id}.</ErrorNote>;
  const data = job.data;

  return (
    <section className="page job-detail" aria-labelledby="job-title">
      <p>
        <Link to="/jobs">← Jobs</Link>
      </p>
      <h1 id="job-title">
        Job {data.id}: {targetLabel(data)}
      </h1>
      <div className="toolbar">
        <StatusBadge status={data.status} note={data.cancel_requested ? "cancel requested" : undefined} />
        <LiveIndicator state={live} />
        {canOperate && canCancel(data) && (
          <button type="button" disabled={action.isPending} onClick={() => action.mutate({ id, action: "cancel" })}>
            Cancel
          </button>
        )}
        {canOperate && canRetry(data) && (
          <button type="button" disabled={action.isPending} onClick={() => action.mutate({ id, action: "retry" })}>
            Retry
          </button>
        )}
      </div>
      {action.error && <ErrorNote error={action.error} />}
      <Facts job={data} />
      <h2>Arguments</h2>
      <pre className="data">{json(data.args)}</pre>
      <h2>Keyword arguments</h2>
      <pre className="data">{json(data.kwargs)}</pre>
      <h2>Result</h2>
      <pre className="data">{data.result === null || data.result === undefined ? "(none)" : json(data.result)}</pre>
      <h2>Attempts</h2>
      <Attempts attempts={data.attempts_history} />
    </section>
  );
}

function Facts({ job }: { job: JobDetail }) {
  return (
    <dl className="facts">
      <dt>Queue</dt>
      <dd>{job.queue}</dd>
      <dt>Priority</dt>
      <dd>{job.priority}</dd>
      <dt>Attempts</dt>
      <dd>
        {job.attempts}/{job.max_attempts}
      </dd>
      <dt>Created</dt>
      <dd>
        <Time iso={job.created_at} />
      </dd>
      <dt>Scheduled</dt>
      <dd>
        <Time iso={job.scheduled_at} />
      </dd>
      <dt>Started</dt>
      <dd>
        <Time iso={job.started_at} />
      </dd>
      <dt>Finished</dt>
      <dd>
        <Time iso={job.finished_at} />
      </dd>
      <dt>Duration</dt>
      <dd>{duration(job)}</dd>
      <dt>Timeout</dt>
      <dd>{job.timeout === null ? "none" : `${job.timeout} s`}</dd>
      <dt>Parent</dt>
      <dd>{job.parent_id === null ? "none" : <Link to={`/jobs/${job.parent_id}`}>job {job.parent_id}</Link>}</dd>
      <dt>Follow-ups</dt>
      <dd>
        {job.follow_ups.length === 0
          ? "none"
          : job.follow_ups.map((child, index) => (
              <span key={child}>
                {index > 0 && ", "}
                <Link to={`/jobs/${child}`}>job {child}</Link>
              </span>
            ))}
      </dd>
      {(job.error_type ?? job.error_message) && (
        <>
          <dt>Error</dt>
          <dd className="error-text">{[job.error_type, job.error_message].filter(Boolean).join(": ")}</dd>
        </>
      )}
    </dl>
  );
}

function Attempts({ attempts }: { attempts: Attempt[] }) {
  if (!attempts.length) return <p className="muted">No attempt yet.</p>;
  return (
    <ol className="timeline">
      {attempts.map((attempt) => (
        <li key={attempt.number} className={`attempt outcome-${attempt.outcome ?? "running"}`}>
          <h3>
            Attempt {attempt.number}: <StatusBadge status={attempt.outcome ?? "running"} />
          </h3>
          <p className="muted">
            <Time iso={attempt.started_at} />
            {attempt.finished_at && (
              <>
                {" → "}
                <Time iso={attempt.finished_at} />
              </>
            )}
            {attempt.worker ? ` on ${attempt.worker}` : ""}
          </p>
          {(attempt.error_type ?? attempt.error_message) && (
            <p className="error-text">{[attempt.error_type, attempt.error_message].filter(Boolean).join(": ")}</p>
          )}
          {attempt.traceback && (
            <details>
              <summary>Traceback</summary>
              <pre className="data">{attempt.traceback}</pre>
            </details>
          )}
        </li>
      ))}
    </ol>
  );
}
