// Bulk cancel or retry: of the selected rows, or of every job that matches a filter (a dry run counts them
// first, the confirmation shows the count, then a background run on the server reports its progress).
import { useMutation } from "@tanstack/react-query";
import { useState } from "react";

import { ConfirmDialog } from "../../components/ConfirmDialog";
import { ErrorNote, RunProgress } from "../../components/ui";
import { plural } from "../../lib/format";
import type { BulkCount } from "../../lib/types";
import { type RowAction, bulkCount, bulkStart, useBulkRun } from "./api";
import type { JobFilter } from "./filters";
import { useSelectionRun } from "./selection";

const VERB: Record<RowAction, string> = { cancel: "Cancel", retry: "Retry" };

/** "Retry all matching…": count, confirm, run, show progress. */
export function FilterBulkButton(props: { action: RowAction; filter: JobFilter; label?: string; what?: string }) {
  const { action, filter, label, what = "jobs matching this filter" } = props;
  const [count, setCount] = useState<BulkCount | null>(null);
  const [runId, setRunId] = useState<number | null>(null);
  const counting = useMutation({ mutationFn: () => bulkCount(action, filter), onSuccess: setCount });
  const starting = useMutation({
    mutationFn: () => bulkStart(action, filter),
    onSuccess: (run) => {
      setCount(null);
      setRunId(run.id);
    },
  });
  const run = useBulkRun(runId);
  const running = run.data?.status === "running" || starting.isPending;

  return (
    <span className="bulk">
      <button type="button" disabled={counting.isPending || running} onClick={() => counting.mutate()}>
        {label ?? `${VERB[action]} all matching…`}
      </button>
      {count && (
        <ConfirmDialog
          title={`${VERB[action]} ${count.count_exact ? "" : "at least "}${plural(count.count, "job")}?`}
          confirmLabel={`${VERB[action]} ${plural(count.count, "job")}`}
          danger={action === "cancel"}
          busy={starting.isPending || count.count === 0}
          onConfirm={() => starting.mutate()}
          onClose={() => setCount(null)}
        >
          <p>
            {count.count === 0
              ? `No ${what}.`
              : `${VERB[action]} ${count.count_exact ? "" : "at least "}${plural(count.count, "job")}: ${what}. ` +
                "It runs on the server in batches; jobs whose state forbids it are skipped."}
          </p>
          {starting.error && <ErrorNote error={starting.error} />}
        </ConfirmDialog>
      )}
      {counting.error && <ErrorNote error={counting.error} />}
      {run.data && (
        <RunProgress
          label={`${VERB[run.data.action]} run ${run.data.id}`}
          done={run.data.done}
          total={run.data.total}
          skipped={run.data.skipped}
          status={run.data.status}
        />
      )}
      {run.data?.error && <ErrorNote error={new Error(run.data.error)} />}
      {run.error && <ErrorNote error={run.error} />}
    </span>
  );
}

/** Cancel or retry the selected rows, after a confirmation. */
export function SelectionBulkButtons({ ids, onDone }: { ids: number[]; onDone: () => void }) {
  const [asking, setAsking] = useState<RowAction | null>(null);
  const { progress, start } = useSelectionRun();
  const running = progress?.status === "running";
  return (
    <span className="bulk">
      {(["cancel", "retry"] as const).map((action) => (
        <button key={action} type="button" disabled={!ids.length || running} onClick={() => setAsking(action)}>
          {VERB[action]} selected ({ids.length})
        </button>
      ))}
      {asking && (
        <ConfirmDialog
          title={`${VERB[asking]} ${plural(ids.length, "selected job")}?`}
          confirmLabel={`${VERB[asking]} ${plural(ids.length, "job")}`}
          danger={asking === "cancel"}
          onConfirm={() => {
            const action = asking;
            setAsking(null);
            void start(action, ids).then(onDone);
          }}
          onClose={() => setAsking(null)}
        >
          <p>Jobs whose state forbids it by then are skipped.</p>
        </ConfirmDialog>
      )}
      {progress && (
        <RunProgress
          label={`${VERB[progress.action]} selected`}
          done={progress.done}
          total={progress.total}
          skipped={progress.skipped}
          status={progress.status}
        />
      )}
      {progress?.failures.map((failure) => (
        <p key={failure} className="error" role="alert">
          {failure}
        </p>
      ))}
    </span>
  );
}
