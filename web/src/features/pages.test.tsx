// The other pages against a fake API: what each shows, and that controls follow the role.
import { screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { fakeApi, makeJob, renderApp, reply } from "../../test/fakes";

describe("the job detail", () => {
  it("shows args, result, parent and follow-ups as links, and each attempt's error and traceback", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/jobs/8", {
      ...makeJob({ id: 8, status: "failed", parent_id: 5, args: ["<script>x</script>"], result: { sent: 2 } }),
      attempts: 2,
      attempts_history: [
        {
          number: 1,
          started_at: "2024-05-01T10:00:00Z",
          finished_at: "2024-05-01T10:00:01Z",
          outcome: "failed",
          error_type: "TimeoutError",
          error_message: "smtp slow",
          traceback: 'Traceback (most recent call last):\n  File "<mail>", line 1\nTimeoutError: smtp slow',
          worker: "w-1",
        },
        {
          number: 2,
          started_at: "2024-05-01T10:01:00Z",
          finished_at: null,
          outcome: null,
          error_type: null,
          error_message: null,
          traceback: null,
          worker: "w-2",
        },
      ],
      follow_ups: [9, 10],
    });
    api.on("POST /api/jobs/8/retry", makeJob({ id: 8, status: "pending" }));
    const { user } = renderApp("/jobs/8");

    expect(await screen.findByRole("heading", { name: "Job 8: app.tasks.Mailer::send" })).toBeInTheDocument();
    expect(screen.getByText('["<script>x</script>"]')).toBeInTheDocument();
    expect(screen.getByText('{"sent":2}')).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "job 5" })).toHaveAttribute("href", "/jobs/5");
    expect(screen.getByRole("link", { name: "job 9" })).toHaveAttribute("href", "/jobs/9");
    expect(screen.getByRole("link", { name: "job 10" })).toHaveAttribute("href", "/jobs/10");
    expect(screen.getByText("TimeoutError: smtp slow")).toBeInTheDocument();
    expect(screen.getByText(/File "<mail>", line 1/)).toBeInTheDocument();
    expect(screen.getByRole("heading", { name: /Attempt 2: running/ })).toBeInTheDocument();
    expect(document.querySelector("script")).toBeNull();

    await user.click(screen.getByRole("button", { name: "Retry" }));
    await waitFor(() => {
      expect(api.callsTo("POST /api/jobs/8/retry")).toHaveLength(1);
    });
    expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull(); // a failed job can only be retried
  });

  it("says so for an unknown job", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs/12345", reply(404, { error: "job 12345 not found" }));
    renderApp("/jobs/12345");
    expect(await screen.findByRole("heading", { name: "Job not found" })).toBeInTheDocument();
  });
});

describe("the logs page", () => {
  it("shows the last 10 lines of each log exactly as written, and more on request", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/logs", (call) => ({
      job: [`[2024-05-01 10:00:00] Job 1 <b>done</b>   (lines=${call.query.get("lines") ?? ""})`],
      error: ["Traceback:\n  tabs\there"],
    }));
    const { user } = renderApp("/jobs/logs");
    const jobLog = await screen.findByLabelText("Job log", { selector: "pre" });
    expect(jobLog.tagName).toBe("PRE");
    expect(jobLog.textContent).toBe("[2024-05-01 10:00:00] Job 1 <b>done</b>   (lines=10)");
    expect(screen.getByLabelText("Error log", { selector: "pre" }).textContent).toBe("Traceback:\n  tabs\there");
    expect(document.querySelector("b")).toBeNull();

    await user.click(screen.getByRole("button", { name: "Show more" }));
    await waitFor(() => {
      expect(screen.getByLabelText("Job log", { selector: "pre" }).textContent).toContain("(lines=50)");
    });
    expect(screen.getByTestId("location")).toHaveTextContent("/jobs/logs?lines=50");
  });
});

describe("controls follow the role", () => {
  const queues = {
    queues: [{ name: "mail", paused: false, pending: 3, due: 2, running: 1, oldest_due_at: null, oldest_due_age_s: 0 }],
  };

  it("a viewer sees queues without pause buttons, and no audit link", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/queues", queues);
    renderApp("/queues");
    expect(await screen.findByRole("rowheader", { name: "mail" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /pause|resume/i })).toBeNull();
    expect(screen.queryByRole("link", { name: "Audit" })).toBeNull();
  });

  it("an operator pauses a queue", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/queues", queues);
    api.on("POST /api/queues/mail/pause", { ...queues.queues[0], paused: true });
    const { user } = renderApp("/queues");
    await user.click(await screen.findByRole("button", { name: "Pause queue mail" }));
    await waitFor(() => {
      expect(api.callsTo("POST /api/queues/mail/pause")).toHaveLength(1);
    });
    expect(screen.queryByRole("link", { name: "Audit" })).toBeNull();
  });

  it("an admin also sees the audit trail", async () => {
    const api = fakeApi("admin");
    api.on("GET /api/audit", {
      entries: [{ id: 3, at: "2024-05-01T10:00:00Z", actor: "ann (token 2)", action: "job.cancel", subject: "job 4", detail: "" }],
      next: null,
    });
    const { user } = renderApp("/jobs/logs");
    api.on("GET /api/logs", { job: [], error: [] });
    await user.click(await screen.findByRole("link", { name: "Audit" }));
    const row = (await screen.findByText("ann (token 2)")).closest("tr");
    expect(row).not.toBeNull();
    expect(within(row as HTMLElement).getByText("job.cancel")).toBeInTheDocument();
  });

  it("a viewer who opens /audit is told it is for admins", async () => {
    fakeApi("viewer");
    renderApp("/audit");
    expect(await screen.findByText("Only an admin may see this page.")).toBeInTheDocument();
  });
});

describe("the overview and failures", () => {
  it("shows counts by status (estimates marked) and each queue's oldest due job", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/stats", {
      by_status: { pending: { count: 12, exact: true }, completed: { count: 1000000, exact: false } },
      by_queue: { mail: { pending: { count: 12, exact: true }, running: { count: 1, exact: true } } },
      per_minute: [{ minute: "2024-05-01T10:00:00Z", completed: 5, failed: 1 }],
      oldest_due: { mail: "2024-05-01T09:59:00Z" },
    });
    renderApp("/");
    const cards = await screen.findByRole("list", { name: "Jobs by status" });
    expect(within(cards).getByRole("link", { name: /12\s*pending/ })).toHaveAttribute("href", "/jobs?status=pending");
    expect(within(cards).getByRole("link", { name: /~1,000,000\s*completed/ })).toBeInTheDocument();
    expect(screen.getByRole("img", { name: /Throughput.*completed: 5, failed: 1/ })).toBeInTheDocument();
    expect(screen.getByRole("img", { name: /Failure rate.*failed %: 16.7/ })).toBeInTheDocument();
    expect(screen.getByRole("rowheader", { name: "mail" })).toBeInTheDocument();
  });

  it("retries a failure group after confirming its count", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/failures", {
      groups: [
        {
          error_type: "KeyError",
          target: "app.tasks.Billing",
          method: "charge",
          count: 7,
          first_at: "2024-05-01T09:00:00Z",
          last_at: "2024-05-01T10:00:00Z",
          sample_job_id: 77,
          sample_message: "'<customer>'",
        },
      ],
    });
    api.on("POST /api/jobs/bulk", { count: 7, count_exact: true });
    const { user } = renderApp("/failures");
    expect(await screen.findByText("'<customer>'")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry group…" }));
    expect(await screen.findByRole("dialog", { name: "Retry 7 jobs?" })).toBeInTheDocument();
    expect(api.callsTo("POST /api/jobs/bulk")[0]?.body).toEqual({
      action: "retry",
      filter: { status: ["failed"], target: "app.tasks.Billing" },
      dry_run: true,
    });
  });
});
