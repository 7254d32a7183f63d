// /queues: every queue's depth and oldest due job; operators pause and resume them.
import { ErrorNote, Loading, Time } from "../../components/ui";
import { useMay } from "../../lib/auth";
import { seconds } from "../../lib/format";
import { usePauseQueue, useQueues } from "./api";

export function QueuesPage() {
  const queues = useQueues();
  const canOperate = useMay("operate");
  const pause = usePauseQueue();
  return (
    <section className="page" aria-labelledby="queues-title">
      <h1 id="queues-title">Queues</h1>
      {queues.isPending && <Loading what="queues" />}
      {queues.error && <ErrorNote error={queues.error} />}
      {pause.error && <ErrorNote error={pause.error} />}
      {queues.data?.length === 0 && <p className="empty">No queues yet: they appear with their first job.</p>}
      {queues.data && queues.data.length > 0 && (
        <table className="grid">
          <thead>
            <tr>
              <th scope="col">Queue</th>
              <th scope="col">State</th>
              <th scope="col" className="num">Pending</th>
              <th scope="col" className="num">Due</th>
              <th scope="col" className="num">Running</th>
              <th scope="col">Oldest due</th>
              {canOperate && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {queues.data.map((queue) => (
              <tr key={queue.name}>
                <th scope="row">{queue.name}</th>
                <td>
                  <span className={`badge ${queue.paused ? "status-cancelled" : "status-completed"}`}>
                    {queue.paused ? "paused" : "active"}
                  </span>
                </td>
                <td className="num">{queue.pending.toLocaleString()}</td>
                <td className="num">{queue.due.toLocaleString()}</td>
                <td className="num">{queue.running.toLocaleString()}</td>
                <td>
                  {queue.oldest_due_at ? (
                    <>
                      <Time iso={queue.oldest_due_at} /> ({seconds(queue.oldest_due_age_s)} ago)
                    </>
                  ) : (
                    <span className="muted">nothing due</span>
                  )}
                </td>
                {canOperate && (
                  <td>
                    <button
                      type="button"
                      className="small"
                      aria-label={`${queue.paused ? "Resume" : "Pause"} queue ${queue.name}`}
                      disabled={pause.isPending}
                      onClick={() => pause.mutate({ name: queue.name, pause: !queue.paused })}
                    >
                      {queue.paused ? "Resume" : "Pause"}
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
