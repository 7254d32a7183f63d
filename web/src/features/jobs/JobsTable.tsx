// The jobs table: every loaded row (pages accumulate as "Older" loads them), rendered through a virtualizer so
// thousands of rows cost only what is on screen. Everything shown is data, rendered as text.
import {
  type ColumnDef,
  type RowSelectionState,
  flexRender,
  getCoreRowModel,
  useReactTable,
} from "@tanstack/react-table";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef } from "react";
import { Link } from "react-router";

import { StatusBadge, Time } from "../../components/ui";
import { duration, params, targetLabel } from "../../lib/format";
import type { Job } from "../../lib/types";
import { type RowAction, canCancel, canRetry } from "./api";

export const ROW_HEIGHT = 34;

interface Props {
  jobs: Job[];
  canOperate: boolean;
  selection: RowSelectionState;
  onSelectionChange: (next: RowSelectionState) => void;
  onAction: (id: number, action: RowAction) => void;
  busyIds: ReadonlySet<number>;
}

function columnsFor(props: Pick<Props, "canOperate" | "onAction" | "busyIds">): ColumnDef<Job>[] {
  const columns: ColumnDef<Job>[] = [
    {
      id: "id",
      header: "ID",
      cell: ({ row }) => <Link to={`/jobs/${row.original.id}`}>{row.original.id}</Link>,
    },
    { id: "target", header: "Target", cell: ({ row }) => targetLabel(row.original) },
    { id: "params", header: "Params", cell: ({ row }) => params(row.original) },
    {
      id: "status",
      header: "Status",
      cell: ({ row }) => (
        <StatusBadge
          status={row.original.status}
          note={row.original.cancel_requested && row.original.status === "running" ? "cancel requested" : undefined}
        />
      ),
    },
    { id: "priority", header: "Priority", cell: ({ row }) => row.original.priority },
    { id: "queue", header: "Queue", cell: ({ row }) => row.original.queue },
    { id: "attempts", header: "Attempts", cell: ({ row }) => `${row.original.attempts}/${row.original.max_attempts}` },
    { id: "scheduled", header: "Scheduled", cell: ({ row }) => <Time iso={row.original.scheduled_at} /> },
    { id: "started", header: "Started", cell: ({ row }) => <Time iso={row.original.started_at} /> },
    { id: "finished", header: "Finished", cell: ({ row }) => <Time iso={row.original.finished_at} /> },
    { id: "duration", header: "Duration", cell: ({ row }) => duration(row.original) },
    { id: "error", header: "Error", cell: ({ row }) => errorText(row.original) },
  ];
  if (!props.canOperate) return columns;
  const select: ColumnDef<Job> = {
    id: "select",
    header: ({ table }) => (
      <input
        type="checkbox"
        aria-label="Select all loaded jobs"
        checked={table.getIsAllRowsSelected()}
        ref={(box) => {
          if (box) box.indeterminate = table.getIsSomeRowsSelected();
        }}
        onChange={table.getToggleAllRowsSelectedHandler()}
      />
    ),
    cell: ({ row }) => (
      <input
        type="checkbox"
        aria-label={`Select job ${row.original.id}`}
        checked={row.getIsSelected()}
        onChange={row.getToggleSelectedHandler()}
      />
    ),
  };
  const actions: ColumnDef<Job> = {
    id: "actions",
    header: "Actions",
    cell: ({ row }) => <RowButtons job={row.original} {...props} />,
  };
  // the actions beside the status they depend on, in view without scrolling sideways
  const status = columns.findIndex((column) => column.id === "status") + 1;
  return [select, ...columns.slice(0, status), actions, ...columns.slice(status)];
}

function errorText(job: Job): string {
  if (!job.error_type && !job.error_message) return "";
  return [job.error_type, job.error_message].filter(Boolean).join(": ");
}

function RowButtons({ job, onAction, busyIds }: { job: Job } & Pick<Props, "onAction" | "busyIds">) {
  const busy = busyIds.has(job.id);
  return (
    <span className="row-actions">
      {canCancel(job) && (
        <button
          type="button"
          className="small"
          aria-label={`Cancel job ${job.id}`}
          disabled={busy}
          onClick={() => onAction(job.id, "cancel")}
        >
          Cancel
        </button>
      )}
      {canRetry(job) && (
        <button
          type="button"
          className="small"
          aria-label={`Retry job ${job.id}`}
          disabled={busy}
          onClick={() => onAction(job.id, "retry")}
        >
          Retry
        </button>
      )}
    </span>
  );
}

export function JobsTable(props: Props) {
  const { jobs, canOperate, onAction, busyIds, selection, onSelectionChange } = props;
  const columns = useMemo(() => columnsFor({ canOperate, onAction, busyIds }), [canOperate, onAction, busyIds]);
  const table = useReactTable({
    data: jobs,
    columns,
    getRowId: (job) => String(job.id),
    getCoreRowModel: getCoreRowModel(),
    state: { rowSelection: selection },
    enableRowSelection: canOperate,
    onRowSelectionChange: (updater) => {
      onSelectionChange(typeof updater === "function" ? updater(selection) : updater);
    },
  });
  const scroller = useRef<HTMLDivElement>(null);
  const rows = table.getRowModel().rows;
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const items = virtualizer.getVirtualItems();
  const top = items[0]?.start ?? 0;
  const bottom = virtualizer.getTotalSize() - (items.at(-1)?.end ?? 0);

  return (
    <div className="table-scroll" ref={scroller} tabIndex={-1}>
      <table className="jobs-table">
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {group.headers.map((header) => (
                <th key={header.id} scope="col" className={`col-${header.column.id}`}>
                  {flexRender(header.column.columnDef.header, header.getContext())}
                </th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {top > 0 && <Spacer height={top} columns={columns.length} />}
          {items.map((item) => {
            const row = rows[item.index];
            if (!row) return null;
            return (
              <tr key={row.id} className={row.getIsSelected() ? "selected" : undefined} data-job-id={row.id}>
                {row.getVisibleCells().map((cell) => (
                  <td key={cell.id} className={`col-${cell.column.id}`} title={titleOf(cell.column.id, row.original)}>
                    {flexRender(cell.column.columnDef.cell, cell.getContext())}
                  </td>
                ))}
              </tr>
            );
          })}
          {bottom > 0 && <Spacer height={bottom} columns={columns.length} />}
        </tbody>
      </table>
    </div>
  );
}

// Long cells are cut to one line on screen: their whole text shows on hover
function titleOf(column: string, job: Job): string | undefined {
  if (column === "params") return params(job) || undefined;
  if (column === "error") return errorText(job) || undefined;
  if (column === "target") return targetLabel(job);
  return undefined;
}

function Spacer({ height, columns }: { height: number; columns: number }) {
  // React sets a style through the DOM (CSSOM), which the strict CSP allows (it refuses style attributes in HTML)
  return (
    <tr aria-hidden="true" className="spacer">
      <td colSpan={columns} style={{ height }} />
    </tr>
  );
}
