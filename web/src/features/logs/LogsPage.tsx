// /jobs/logs: the last lines of the job log and the error log, exactly as written (10 by default, more on
// request), refreshed every few seconds.
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useSearchParams } from "react-router";

import { ErrorNote, Loading } from "../../components/ui";
import { api } from "../../lib/api";
import type { LogLine, Logs } from "../../lib/types";

export const LINE_CHOICES = [10, 50, 100, 500, 1000] as const;
const REFRESH_MS = 3000;

export function linesFrom(raw: string | null): number {
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= 1000 ? n : 10;
}

export function useLogs(lines: number) {
  return useQuery({
    queryKey: ["logs", lines],
    queryFn: ({ signal }) => api<Logs>("/api/logs", { query: { lines }, signal }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
}

export function LogsPage() {
  const [params, setParams] = useSearchParams();
  const lines = linesFrom(params.get("lines"));
  const logs = useLogs(lines);
  const more = LINE_CHOICES.find((n) => n > lines);
  return (
    <section className="page logs-page" aria-labelledby="logs-title">
      <h1 id="logs-title">Logs</h1>
      <div className="toolbar">
        <label>
          Lines{" "}
          <select
            value={lines}
            onChange={(event) => {
              setParams({ lines: event.target.value });
            }}
          >
            {(LINE_CHOICES as readonly number[]).concat(LINE_CHOICES.includes(lines as 10) ? [] : [lines]).map((n) => (
              <option key={n} value={n}>
                last {n}
              </option>
            ))}
          </select>
        </label>
        {more && (
          <button type="button" onClick={() => setParams({ lines: String(more) })}>
            Show more
          </button>
        )}
        <span className="muted">refreshes every {REFRESH_MS / 1000} s</span>
      </div>
      {logs.isPending && <Loading what="the logs" />}
      {logs.error && <ErrorNote error={logs.error} />}
      {logs.data && (
        <>
          <LogBlock title="Job log" lines={logs.data.job ?? []} />
          <LogBlock title="Error log" lines={logs.data.error ?? []} />
        </>
      )}
    </section>
  );
}

function LogBlock({ title, lines }: { title: string; lines: (string | LogLine)[] }) {
  const id = title.toLowerCase().replace(/\s+/g, "-");
  return (
    <section aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {lines.length === 0 ? (
        <p className="muted">Nothing written yet.</p>
      ) : (
        <pre className="log" tabIndex={0} aria-label={title}>
          {lines.map((line) => (typeof line === "string" ? line : line.line)).join("\n")}
        </pre>
      )}
    </section>
  );
}
