// Cancel or retry the selected rows: one request per job, in order, with progress. A job whose state forbids the
// action by now is skipped (409); a rate limit (429) is waited out, not counted as a failure.
import { useQueryClient } from "@tanstack/react-query";
import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError, messageOf } from "../../lib/api";
import { type RowAction, jobAction, upsertJobs } from "./api";

export interface SelectionProgress {
  action: RowAction;
  total: number;
  done: number;
  skipped: number;
  failures: string[];
  status: "running" | "done" | "stopped";
}

const wait = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms);
  });

export function useSelectionRun() {
  const queryClient = useQueryClient();
  const [progress, setProgress] = useState<SelectionProgress | null>(null);
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);

  const start = useCallback(
    async (action: RowAction, ids: number[]) => {
      const state: SelectionProgress = { action, total: ids.length, done: 0, skipped: 0, failures: [], status: "running" };
      setProgress({ ...state });
      for (const id of ids) {
        for (;;) {
          if (!alive.current) return;
          try {
            const job = await jobAction(id, action);
            if (job) upsertJobs(queryClient, [job]);
            state.done++;
          } catch (error) {
            if (error instanceof ApiError && error.status === 429) {
              await wait((error.retryAfterS ?? 1) * 1000);
              continue;
            }
            if (error instanceof ApiError && (error.status === 409 || error.status === 404)) state.skipped++;
            else state.failures.push(`job ${id}: ${messageOf(error)}`);
          }
          break;
        }
        setProgress({ ...state });
      }
      state.status = "done";
      setProgress({ ...state });
    },
    [queryClient],
  );

  return { progress, start, clear: () => setProgress(null) };
}
