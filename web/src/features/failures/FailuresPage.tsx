// /failures: failed jobs grouped by error type and target, with a sample traceback; a group is retried in one
// action (a bulk run over its target's failed jobs, after a confirmation with the count).
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";

import { ErrorNote, Loading, Time } from "../../components/ui";
import { api, listOf } from "../../lib/api";
import { useMay } from "../../lib/auth";
import type { FailureGroup } from "../../lib/types";
import { targetLabel } from "../../lib/format";
import { useJob } from "../jobs/api";
import { FilterBulkButton } from "../jobs/BulkActions";
import { EMPTY_FILTER, type JobFilter } from "../jobs/filters";

export function useFailures() {
  return useQuery({
    queryKey: ["failures"],
    queryFn: async ({ signal }) => listOf<FailureGroup>(await api<unknown>("/api/failures", { signal }), "groups"),
    refetchInterval: 15_000,
  });
}

const groupFilter = (group: FailureGroup, status: JobFilter["status"]): JobFilter => ({
  ...EMPTY_FILTER,
  status,
  target: group.target,
});

export function FailuresPage() {
  const failures = useFailures();
  const canOperate = useMay("operate");
  return (
    <section className="page" aria-labelledby="failures-title">
      <h1 id="failures-title">Failures</h1>
      {failures.isPending && <Loading what="failures" />}
      {failures.error && <ErrorNote error={failures.error} />}
      {failures.data?.length === 0 && <p className="empty">No failed jobs.</p>}
      <ul className="groups">
        {failures.data?.map((group) => (
          <li key={`${group.error_type}|${group.target}|${group.method}`} className="group card">
            <h2>
              {group.error_type} <span className="muted">in</span> {targetLabel(group)}
            </h2>
            <p>
              <strong>{group.count.toLocaleString()}</strong> failed, first <Time iso={group.first_at} />, last{" "}
              <Time iso={group.last_at} />.{" "}
              <Link to={`/jobs?status=failed&target=${encodeURIComponent(group.target)}`}>Show jobs</Link>
            </p>
            {group.sample_message && <p className="error-text">{group.sample_message}</p>}
            <SampleTraceback jobId={group.sample_job_id} />
            {canOperate && (
              <div className="group-actions">
                <FilterBulkButton
                  action="retry"
                  filter={groupFilter(group, ["failed"])}
                  label="Retry group…"
                  what={`failed jobs of ${group.target}`}
                />
                <FilterBulkButton
                  action="cancel"
                  filter={groupFilter(group, ["pending"])}
                  label="Cancel pending…"
                  what={`pending jobs of ${group.target} (a failed job can only be retried)`}
                />
              </div>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function SampleTraceback({ jobId }: { jobId: number }) {
  const [open, setOpen] = useState(false);
  return (
    <details
      onToggle={(event) => {
        setOpen(event.currentTarget.open);
      }}
    >
      <summary>
        Sample: <Link to={`/jobs/${jobId}`}>job {jobId}</Link>
      </summary>
      {open && <SampleBody jobId={jobId} />}
    </details>
  );
}

function SampleBody({ jobId }: { jobId: number }) {
  const job = useJob(jobId);
  if (job.isPending) return <Loading what="the sample" />;
  if (job.error) return <ErrorNote error={job.error} />;
  const last = [...job.data.attempts_history].reverse().find((attempt) => attempt.traceback);
  return <pre className="data">{last?.traceback ?? "No traceback was recorded."}</pre>;
}
