// How values read on screen: times in the viewer's zone, durations, a job's parameters as one line of text.
import type { Job } from "./types";

const pad = (n: number) => String(n).padStart(2, "0");

/** Milliseconds since the epoch; the API's times are UTC (ISO with a Z; one without a zone is UTC too). */
export function millis(iso: string): number {
  return Date.parse(/(?:[zZ]|[+-]\d\d:?\d\d)$/.test(iso) ? iso : `${iso}Z`);
}

/** "14:03:07" today, "2024-05-01 14:03" another day; "" for none. The API's times are UTC ISO with a Z. */
export function shortTime(iso: string | null, now: Date = new Date()): string {
  if (!iso) return "";
  const at = new Date(millis(iso));
  if (Number.isNaN(at.getTime())) return iso;
  const clock = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  if (at.toDateString() === now.toDateString()) return clock;
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${clock.slice(0, 5)}`;
}

export function fullTime(iso: string | null): string {
  if (!iso) return "";
  const at = new Date(millis(iso));
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleString();
}

export function seconds(value: number): string {
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 60) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
  if (value < 3600) return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
  return `${Math.floor(value / 3600)} h ${Math.round((value % 3600) / 60)} min`;
}

/** How long a job ran (or has been running); "" before it started. */
export function duration(job: Pick<Job, "started_at" | "finished_at" | "status">, now: Date = new Date()): string {
  if (!job.started_at) return "";
  const start = millis(job.started_at);
  const end = job.finished_at ? millis(job.finished_at) : job.status === "running" ? now.getTime() : NaN;
  if (Number.isNaN(start) || Number.isNaN(end)) return "";
  return seconds(Math.max(0, end - start) / 1000);
}

export function json(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    const text = JSON.stringify(value) as string | undefined; // undefined for undefined
    return text ?? "";
  } catch {
    return String(value);
  }
}

/** args and kwargs on one line: `[1, "a"] {"k": 2}`; a sensitive job's redaction as sent. */
export function params(job: Pick<Job, "args" | "kwargs">): string {
  const parts: string[] = [];
  const args = job.args;
  const kwargs = job.kwargs;
  if (typeof args === "string" || args.length > 0) parts.push(json(args));
  if (typeof kwargs === "string" || Object.keys(kwargs).length > 0) parts.push(json(kwargs));
  return parts.join(" ");
}

/** `pkg.mod.Class::method`, or a function target alone (`pkg.mod:func`: its method is empty). */
export function targetLabel(job: Pick<Job, "target" | "method">): string {
  return job.method && job.method !== "-" ? `${job.target}::${job.method}` : job.target;
}

export function plural(n: number, word: string): string {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}
