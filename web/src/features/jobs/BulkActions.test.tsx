import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { fakeApi, makeJob, renderApp, reply } from "../../../test/fakes";
import type { BulkRun } from "../../lib/types";

const run = (overrides: Partial<BulkRun>): BulkRun => ({
  id: 4,
  action: "retry",
  status: "running",
  total: 1200,
  done: 0,
  skipped: 0,
  error: null,
  ...overrides,
});

describe("bulk actions", () => {
  it("retries everything matching the filter after a confirmation that shows the count, with progress", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/jobs", { jobs: [makeJob({ id: 9, status: "failed" })], next: 9, count: 1000, count_exact: false });
    api.on("POST /api/jobs/bulk", (call) =>
      (call.body as { dry_run: boolean }).dry_run ? { count: 1000, count_exact: false } : reply(202, { run: run({}) }),
    );
    let polls = 0;
    api.on("GET /api/jobs/bulk/4", () => ({ run: run(++polls < 2 ? { done: 500 } : { done: 1190, skipped: 10, status: "done" }) }));
    const { user } = renderApp("/jobs?status=failed&target=app.X");
    await screen.findByText(/at least 1,000 matching jobs/);

    await user.click(screen.getByRole("button", { name: "Retry all matching…" }));
    const dialog = await screen.findByRole("dialog", { name: "Retry at least 1,000 jobs?" });
    const dry = api.callsTo("POST /api/jobs/bulk")[0];
    expect(dry?.body).toEqual({ action: "retry", filter: { status: ["failed"], target: "app.X" }, dry_run: true });
    expect(dry?.headers.get("X-CSRF-Token")).toBe("csrf-123");
    expect(api.callsTo("POST /api/jobs/bulk")).toHaveLength(1); // nothing done before the confirmation

    await user.click(within(dialog).getByRole("button", { name: "Retry 1,000 jobs" }));
    expect(api.callsTo("POST /api/jobs/bulk")[1]?.body).toEqual({
      action: "retry",
      filter: { status: ["failed"], target: "app.X" },
      dry_run: false,
    });
    await screen.findByText(/Retry run 4: 500 of 1,200…/);
    await screen.findByText(/Retry run 4: 1,190 of 1,200, 10 skipped .*\(done\)/, {}, { timeout: 10_000 });
    const settled = polls;
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(polls).toBe(settled); // a finished run is not polled again
  });

  it("can be called off at the confirmation", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/jobs", { jobs: [makeJob({ id: 9 })], next: null, count: 1, count_exact: true });
    api.on("POST /api/jobs/bulk", { count: 1, count_exact: true });
    const { user } = renderApp("/jobs");
    await screen.findByText(/1 matching job,/);
    await user.click(screen.getByRole("button", { name: "Cancel all matching…" }));
    const dialog = await screen.findByRole("dialog", { name: "Cancel 1 job?" });
    expect(dialog).toHaveTextContent("every job");
    await user.keyboard("{Escape}");
    await waitFor(() => {
      expect(screen.queryByRole("dialog")).toBeNull();
    });
    expect(api.callsTo("POST /api/jobs/bulk")).toHaveLength(1);
  });

  it("cancels the selected rows one by one, skipping those whose state forbids it", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/jobs", {
      jobs: [makeJob({ id: 3, status: "running" }), makeJob({ id: 2 }), makeJob({ id: 1, status: "completed" })],
      next: null,
      count: 3,
      count_exact: true,
    });
    api.on("POST /api/jobs/3/cancel", makeJob({ id: 3, status: "running", cancel_requested: true }));
    api.on("POST /api/jobs/2/cancel", makeJob({ id: 2, status: "cancelled" }));
    api.on("POST /api/jobs/1/cancel", reply(409, { error: "job 1 is completed: it cannot be cancelled" }));
    const { user } = renderApp("/jobs");
    await user.click(await screen.findByRole("checkbox", { name: "Select all loaded jobs" }));
    await user.click(screen.getByRole("button", { name: "Cancel selected (3)" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Cancel 3 jobs" }));
    await screen.findByText(/Cancel selected: 2 of 3, 1 skipped/);
    expect(api.calls.filter((call) => call.method === "POST").map((call) => call.path).sort()).toEqual([
      "/api/jobs/1/cancel",
      "/api/jobs/2/cancel",
      "/api/jobs/3/cancel",
    ]);
    await waitFor(() => {
      expect(document.querySelector('tr[data-job-id="2"]')).toHaveTextContent("cancelled");
    });
  });

  it("waits out a rate limit instead of failing", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/jobs", { jobs: [makeJob({ id: 5, status: "failed" })], next: null, count: 1, count_exact: true });
    let tries = 0;
    api.on("POST /api/jobs/5/retry", () =>
      ++tries === 1 ? reply(429, { error: "rate limited" }, { "Retry-After": "1" }) : makeJob({ id: 5, status: "pending" }),
    );
    const { user } = renderApp("/jobs");
    await user.click(await screen.findByRole("checkbox", { name: "Select job 5" }));
    await user.click(screen.getByRole("button", { name: "Retry selected (1)" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Retry 1 job" }));
    await screen.findByText(/Retry selected: 1 of 1 \(done\)/, {}, { timeout: 10_000 });
    expect(tries).toBe(2);
    expect(screen.queryByRole("alert")).toBeNull();
  });
});
