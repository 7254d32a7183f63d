// Small shared pieces: a status badge, the live indicator, loading and error notes, a run's progress.
import type { ReactNode } from "react";

import { messageOf } from "../lib/api";
import type { LiveState } from "../lib/events";
import { fullTime, shortTime } from "../lib/format";

export function StatusBadge({ status, note }: { status: string; note?: string }) {
  return (
    <span className={`badge status-${status}`} title={note}>
      {status}
      {note ? " *" : ""}
    </span>
  );
}

const LIVE_TEXT: Record<LiveState, string> = {
  live: "Live",
  connecting: "Connecting…",
  paused: "Paused (tab hidden)",
  offline: "Offline: reload to reconnect",
};

export function LiveIndicator({ state }: { state: LiveState }) {
  return (
    <span className={`live live-${state}`} role="status" aria-live="polite" data-testid="live-indicator">
      <span className="dot" aria-hidden="true" />
      {LIVE_TEXT[state]}
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function ErrorNote({ error, children }: { error: unknown; children?: ReactNode }) {
  return (
    <p className="error" role="alert">
      {children}
      {children ? " " : ""}
      {messageOf(error)}
    </p>
  );
}

export function Time({ iso }: { iso: string | null }) {
  if (!iso) return null;
  return (
    <time dateTime={iso} title={fullTime(iso)}>
      {shortTime(iso)}
    </time>
  );
}

export function RunProgress(props: { label: string; done: number; total: number; skipped: number; status: string }) {
  const { label, done, total, skipped, status } = props;
  return (
    <div className="progress" role="status" aria-live="polite">
      <label>
        {label}: {done.toLocaleString()} of {total.toLocaleString()}
        {skipped ? `, ${skipped.toLocaleString()} skipped (their state forbade it)` : ""}
        {status === "running" ? "…" : ` (${status})`}
        <progress max={Math.max(total, 1)} value={Math.min(done + skipped, Math.max(total, 1))} />
      </label>
    </div>
  );
}
