// /jobs: the live jobs table with its filter (in the URL), keyset paging ("Older"), row and bulk actions.
import type { RowSelectionState } from "@tanstack/react-table";
import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { ErrorNote, LiveIndicator, Loading } from "../../components/ui";
import { messageOf } from "../../lib/api";
import { useMay } from "../../lib/auth";
import { useJobEvents } from "../../lib/events";
import { plural } from "../../lib/format";
import { type RowAction, jobsKey, upsertJobs, useJobAction, useJobs } from "./api";
import { FilterBulkButton, SelectionBulkButtons } from "./BulkActions";
import { FiltersBar } from "./FiltersBar";
import { type JobFilter, filterFromParams, filterToParams, isFiltered } from "./filters";
import { JobsTable } from "./JobsTable";

export function JobsPage() {
  const [searchParams, setSearchParams] = useSearchParams();
  const filter = useMemo(() => filterFromParams(searchParams), [searchParams]);
  const key = filterToParams(filter).toString();
  const apply = (next: JobFilter) => {
    setSearchParams(filterToParams(next));
  };
  return (
    <section className="page jobs-page" aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <FiltersBar key={key} filter={filter} onApply={apply} />
      <JobsView key={`view-${key}`} filter={filter} onApply={apply} />
    </section>
  );
}

function JobsView({ filter, onApply }: { filter: JobFilter; onApply: (next: JobFilter) => void }) {
  const queryClient = useQueryClient();
  const canOperate = useMay("operate");
  const jobs = useJobs(filter);
  const [selection, setSelection] = useState<RowSelectionState>({});
  const [busy, setBusy] = useState<ReadonlySet<number>>(new Set());
  const [actionError, setActionError] = useState<string | null>(null);
  const { mutate } = useJobAction();

  const live = useJobEvents(
    (changed) => {
      upsertJobs(queryClient, changed);
    },
    () => {
      // changes may have been missed: re-read, but only the first page of a deep scroll (each page is a request)
      const pages = queryClient.getQueryData<{ pages: unknown[] }>(jobsKey(filter))?.pages.length ?? 0;
      if (pages <= 5) void queryClient.invalidateQueries({ queryKey: ["jobs"] });
      else void queryClient.resetQueries({ queryKey: jobsKey(filter) });
    },
  );

  const onAction = useCallback(
    (id: number, verb: RowAction) => {
      setBusy((ids) => new Set(ids).add(id));
      setActionError(null);
      mutate(
        { id, action: verb },
        {
          onError: (error) => setActionError(`${verb} job ${id}: ${messageOf(error)}`),
          onSettled: () =>
            setBusy((ids) => {
              const next = new Set(ids);
              next.delete(id);
              return next;
            }),
        },
      );
    },
    [mutate],
  );

  const rows = useMemo(() => jobs.data?.pages.flatMap((page) => page.jobs) ?? [], [jobs.data]);
  const first = jobs.data?.pages[0];
  const selectedIds = Object.keys(selection)
    .filter((id) => selection[id])
    .map(Number);

  return (
    <>
      <div className="toolbar">
        <LiveIndicator state={live} />
        {first && (
          <span className="muted" data-testid="match-count">
            {first.count_exact ? "" : "at least "}
            {plural(first.count, "matching job")}, {rows.length.toLocaleString()} loaded
          </span>
        )}
        {filter.before && (
          <button type="button" onClick={() => onApply({ ...filter, before: "" })}>
            Back to newest
          </button>
        )}
        {canOperate && (
          <span className="bulk-group" aria-label="Bulk actions">
            <SelectionBulkButtons ids={selectedIds} onDone={() => setSelection({})} />
            <FilterBulkButton
              action="cancel"
              filter={filter}
              what={isFiltered(filter) ? "jobs matching this filter" : "every job"}
            />
            <FilterBulkButton
              action="retry"
              filter={filter}
              what={isFiltered(filter) ? "jobs matching this filter" : "every job"}
            />
          </span>
        )}
      </div>
      {actionError && (
        <p className="error" role="alert">
          {actionError}
        </p>
      )}
      {jobs.isPending && <Loading what="jobs" />}
      {jobs.error && <ErrorNote error={jobs.error}>Could not load jobs.</ErrorNote>}
      {jobs.data && rows.length === 0 && <p className="empty">No jobs match.</p>}
      {rows.length > 0 && (
        <JobsTable
          jobs={rows}
          canOperate={canOperate}
          selection={selection}
          onSelectionChange={setSelection}
          onAction={onAction}
          busyIds={busy}
        />
      )}
      <div className="pager">
        {jobs.hasNextPage ? (
          <button type="button" disabled={jobs.isFetchingNextPage} onClick={() => void jobs.fetchNextPage()}>
            {jobs.isFetchingNextPage ? "Loading older…" : "Older"}
          </button>
        ) : (
          jobs.data && rows.length > 0 && <span className="muted">No older jobs.</span>
        )}
        <Link to="/jobs/logs">View logs</Link>
      </div>
    </>
  );
}
