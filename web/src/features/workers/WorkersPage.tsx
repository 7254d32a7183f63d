// /workers: the live workers (their heartbeat within the lease timeout).
import { useQuery } from "@tanstack/react-query";

import { ErrorNote, Loading, Time } from "../../components/ui";
import { api, listOf } from "../../lib/api";
import type { WorkerInfo } from "../../lib/types";

export function useWorkers() {
  return useQuery({
    queryKey: ["workers"],
    queryFn: async ({ signal }) => listOf<WorkerInfo>(await api<unknown>("/api/workers", { signal }), "workers"),
    refetchInterval: 10_000,
  });
}

export function WorkersPage() {
  const workers = useWorkers();
  return (
    <section className="page" aria-labelledby="workers-title">
      <h1 id="workers-title">Workers</h1>
      {workers.isPending && <Loading what="workers" />}
      {workers.error && <ErrorNote error={workers.error} />}
      {workers.data?.length === 0 && <p className="empty">No live worker. Start one with `errands worker`.</p>}
      {workers.data && workers.data.length > 0 && (
        <table className="grid">
          <thead>
            <tr>
              <th scope="col">ID</th>
              <th scope="col">Host</th>
              <th scope="col" className="num">PID</th>
              <th scope="col">Queues</th>
              <th scope="col" className="num">Concurrency</th>
              <th scope="col">Started</th>
              <th scope="col">Heartbeat</th>
            </tr>
          </thead>
          <tbody>
            {workers.data.map((worker) => (
              <tr key={worker.id}>
                <th scope="row">{worker.id}</th>
                <td>{worker.host}</td>
                <td className="num">{worker.pid}</td>
                <td>{worker.queues.length ? worker.queues.join(", ") : <span className="muted">all</span>}</td>
                <td className="num">{worker.concurrency}</td>
                <td>
                  <Time iso={worker.started_at} />
                </td>
                <td>
                  <Time iso={worker.heartbeat_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
