// / (Overview): counts by status, throughput and failure rate over the last hour, each queue's oldest due job.
import { useQuery } from "@tanstack/react-query";
import { useMemo } from "react";
import { Link } from "react-router";

import { LineChart, type Series } from "../../components/LineChart";
import { ErrorNote, Loading, Time } from "../../components/ui";
import { api } from "../../lib/api";
import { millis, seconds } from "../../lib/format";
import { type CountValue, JOB_STATUSES, type Stats } from "../../lib/types";

export function useStats() {
  return useQuery({
    queryKey: ["stats"],
    queryFn: ({ signal }) => api<Stats>("/api/stats", { signal }),
    refetchInterval: 10_000,
  });
}

function countText(count: CountValue | undefined): string {
  if (!count) return "0";
  return `${count.exact ? "" : "~"}${(count.value ?? count.count ?? 0).toLocaleString()}`;
}

export function OverviewPage() {
  const stats = useStats();
  return (
    <section className="page overview" aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      {stats.isPending && <Loading what="stats" />}
      {stats.error && <ErrorNote error={stats.error} />}
      {stats.data && <StatsView stats={stats.data} />}
    </section>
  );
}

function StatsView({ stats }: { stats: Stats }) {
  const charts = useMemo(() => chartData(stats), [stats]);
  const queues = Object.keys(stats.by_queue).sort();
  return (
    <>
      <ul className="cards" aria-label="Jobs by status">
        {JOB_STATUSES.map((status) => (
          <li key={status} className={`card count status-card-${status}`}>
            <Link to={`/jobs?status=${status}`}>
              <span className="count-value">{countText(stats.by_status[status])}</span>
              <span className="count-label">{status}</span>
            </Link>
          </li>
        ))}
      </ul>
      <div className="charts">
        <LineChart title="Throughput, last hour (jobs a minute)" times={charts.times} series={charts.throughput} yLabel="jobs" />
        <LineChart title="Failure rate, last hour (%)" times={charts.times} series={charts.failureRate} yLabel="%" />
      </div>
      <h2>Queues</h2>
      {queues.length === 0 ? (
        <p className="empty">No queues yet.</p>
      ) : (
        <table className="grid">
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col" className="num">Pending</th>
              <th scope="col" className="num">Running</th>
              <th scope="col">Oldest due job</th>
            </tr>
          </thead>
          <tbody>
            {queues.map((queue) => (
              <tr key={queue}>
                <th scope="row">
                  <Link to={`/jobs?queue=${encodeURIComponent(queue)}`}>{queue}</Link>
                </th>
                <td className="num">{countText(stats.by_queue[queue]?.pending)}</td>
                <td className="num">{countText(stats.by_queue[queue]?.running)}</td>
                <td>
                  <OldestDue iso={stats.oldest_due[queue] ?? null} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function OldestDue({ iso }: { iso: string | null }) {
  if (!iso) return <span className="muted">nothing due</span>;
  const age = Math.max(0, (Date.now() - millis(iso)) / 1000);
  return (
    <>
      <Time iso={iso} /> ({seconds(age)} waiting)
    </>
  );
}

export function chartData(stats: Stats): { times: number[]; throughput: Series[]; failureRate: Series[] } {
  const minutes = stats.per_minute;
  const times = minutes.map((m) => millis(m.minute) / 1000);
  const rate = minutes.map((m) => {
    const finished = m.completed + m.failed;
    return finished ? Math.round((1000 * m.failed) / finished) / 10 : null;
  });
  return {
    times,
    throughput: [
      { label: "completed", values: minutes.map((m) => m.completed), colorVar: "--ok" },
      { label: "failed", values: minutes.map((m) => m.failed), colorVar: "--bad" },
    ],
    failureRate: [{ label: "failed %", values: rate, colorVar: "--bad" }],
  };
}
