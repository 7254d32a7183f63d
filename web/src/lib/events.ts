// The API's event stream (GET /api/events): `event: jobs` carries a JSON list of jobs that changed.
// Closed while the tab is hidden (no stream held for nobody) and reopened on return, when whatever changed
// meanwhile must be re-read: `onResync` says so.
import { useEffect, useRef, useState } from "react";

import type { Job } from "./types";

export type LiveState = "connecting" | "live" | "paused" | "offline";

export const EVENTS_URL = "/api/events";

function usePageVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState !== "hidden");
  useEffect(() => {
    const update = () => {
      setVisible(document.visibilityState !== "hidden");
    };
    document.addEventListener("visibilitychange", update);
    return () => {
      document.removeEventListener("visibilitychange", update);
    };
  }, []);
  return visible;
}

export function parseJobs(data: string): Job[] {
  try {
    const value: unknown = JSON.parse(data);
    return Array.isArray(value) ? (value as Job[]).filter((job) => typeof job.id === "number") : [];
  } catch {
    return [];
  }
}

export function useJobEvents(onJobs: (jobs: Job[]) => void, onResync?: () => void): LiveState {
  const visible = usePageVisible();
  const [state, setState] = useState<LiveState>("connecting");
  const handlers = useRef({ onJobs, onResync });
  useEffect(() => {
    handlers.current = { onJobs, onResync };
  });

  useEffect(() => {
    if (!visible) {
      setState("paused");
      return;
    }
    const source = new EventSource(EVENTS_URL);
    let opened = 0;
    setState("connecting");
    source.onopen = () => {
      setState("live");
      // the first open follows the page's own load; any later one (back from hidden, a dropped connection)
      // may have missed changes
      if (opened++ > 0) handlers.current.onResync?.();
    };
    source.onerror = () => {
      setState(source.readyState === EventSource.CLOSED ? "offline" : "connecting");
    };
    source.addEventListener("jobs", (event: MessageEvent<string>) => {
      const jobs = parseJobs(event.data);
      if (jobs.length) handlers.current.onJobs(jobs);
    });
    return () => {
      source.close();
    };
  }, [visible]);

  // coming back from hidden: the first open of the new stream is a resync too
  const wasHidden = useRef(false);
  useEffect(() => {
    if (!visible) wasHidden.current = true;
    else if (wasHidden.current) {
      wasHidden.current = false;
      handlers.current.onResync?.();
    }
  }, [visible]);

  return state;
}
