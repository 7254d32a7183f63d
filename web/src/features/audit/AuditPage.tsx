// /audit (admins): who did what and when, newest first, older entries on request.
import { useInfiniteQuery } from "@tanstack/react-query";

import { ErrorNote, Loading, Time } from "../../components/ui";
import { api } from "../../lib/api";
import type { AuditEntry } from "../../lib/types";

const PAGE = 100;

interface AuditAnswer {
  entries: AuditEntry[];
  next: number | null; // the `before` of older entries
}

export function useAudit() {
  return useInfiniteQuery({
    queryKey: ["audit"],
    queryFn: ({ pageParam, signal }) => api<AuditAnswer>("/api/audit", { query: { limit: PAGE, before: pageParam }, signal }),
    initialPageParam: null as number | null,
    getNextPageParam: (last) => last.next ?? undefined,
  });
}

export function AuditPage() {
  const audit = useAudit();
  const entries = audit.data?.pages.flatMap((page) => page.entries) ?? [];
  return (
    <section className="page" aria-labelledby="audit-title">
      <h1 id="audit-title">Audit</h1>
      {audit.isPending && <Loading what="the audit trail" />}
      {audit.error && <ErrorNote error={audit.error} />}
      {audit.data && entries.length === 0 && <p className="empty">Nothing recorded yet.</p>}
      {entries.length > 0 && (
        <table className="grid">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">Action</th>
              <th scope="col">Subject</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((entry) => (
              <tr key={entry.id}>
                <td>
                  <Time iso={entry.at} />
                </td>
                <td>{entry.actor}</td>
                <td>{entry.action}</td>
                <td>{entry.subject}</td>
                <td className="wrap">{entry.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {audit.hasNextPage && (
        <div className="pager">
          <button type="button" disabled={audit.isFetchingNextPage} onClick={() => void audit.fetchNextPage()}>
            Older
          </button>
        </div>
      )}
    </section>
  );
}
