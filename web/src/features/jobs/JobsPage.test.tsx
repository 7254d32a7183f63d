import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { FakeEventSource, fakeApi, makeJob, renderApp } from "../../../test/fakes";
import type { Job, JobPage } from "../../lib/types";

const page = (jobs: Job[], next: number | null = null): JobPage => ({ jobs, next, count: jobs.length, count_exact: true });

const rowOf = (id: number) => {
  const row = document.querySelector(`tr[data-job-id="${id}"]`);
  if (!(row instanceof HTMLElement)) throw new Error(`no row for job ${id}`);
  return row;
};

describe("the jobs table", () => {
  it("renders each job's columns, and <script> in args as text", async () => {
    const api = fakeApi("viewer");
    const hostile = makeJob({
      id: 7,
      args: ["<script>alert(1)</script>"],
      kwargs: { note: "<img src=x onerror=alert(2)>" },
      status: "failed",
      attempts: 3,
      error_type: "ValueError",
      error_message: "<b>boom</b>",
    });
    api.on("GET /api/jobs", page([hostile, makeJob({ id: 6 })]));
    renderApp("/jobs");

    const row = await waitFor(() => rowOf(7));
    expect(row).toHaveTextContent('["<script>alert(1)</script>"] {"note":"<img src=x onerror=alert(2)>"}');
    expect(row).toHaveTextContent("app.tasks.Mailer::send");
    expect(row).toHaveTextContent("3/3");
    expect(row).toHaveTextContent("ValueError: <b>boom</b>");
    expect(document.querySelector("script")).toBeNull();
    expect(document.querySelector("img")).toBeNull();
    expect(document.querySelector("b")).toBeNull();
    expect(rowOf(6)).toHaveTextContent("pending");
  });

  it("shows a viewer no action buttons", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([makeJob({ id: 3, status: "failed" }), makeJob({ id: 2, status: "pending" })]));
    renderApp("/jobs");
    await waitFor(() => rowOf(3));
    expect(screen.queryByRole("button", { name: /cancel|retry/i })).toBeNull();
    expect(screen.queryByRole("checkbox", { name: /select/i })).toBeNull();
  });

  it("gives an operator cancel and retry per row, sending the CSRF token", async () => {
    const api = fakeApi("operator");
    api.on("GET /api/jobs", page([makeJob({ id: 3, status: "failed" }), makeJob({ id: 2, status: "pending" })]));
    api.on("POST /api/jobs/3/retry", () => makeJob({ id: 3, status: "pending" }));
    const { user } = renderApp("/jobs");
    await waitFor(() => rowOf(3));
    expect(within(rowOf(2)).getByRole("button", { name: "Cancel job 2" })).toBeEnabled();
    expect(within(rowOf(2)).queryByRole("button", { name: /retry/i })).toBeNull();

    await user.click(within(rowOf(3)).getByRole("button", { name: "Retry job 3" }));
    await waitFor(() => {
      expect(rowOf(3)).toHaveTextContent("pending");
    });
    const call = api.callsTo("POST /api/jobs/3/retry")[0];
    expect(call?.headers.get("X-CSRF-Token")).toBe("csrf-123");
  });

  it("loads older pages with the keyset cursor from `next`", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", (call) =>
      call.query.get("before") === "50" ? page([makeJob({ id: 49 })], null) : page([makeJob({ id: 51 }), makeJob({ id: 50 })], 50),
    );
    const { user } = renderApp("/jobs");
    await waitFor(() => rowOf(51));
    await user.click(screen.getByRole("button", { name: "Older" }));
    await waitFor(() => rowOf(49));
    expect(rowOf(51)).toBeInTheDocument();
    expect(api.callsTo("GET /api/jobs").map((call) => call.query.get("before"))).toEqual([null, "50"]);
    expect(api.callsTo("GET /api/jobs")[1]?.query.get("limit")).toBe("50");
    expect(screen.getByText("No older jobs.")).toBeInTheDocument();
  });
});

describe("the filters", () => {
  it("round-trip through the URL: the form writes it, the API reads it, a loaded URL fills the form", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([]));
    const { user } = renderApp("/jobs");
    await screen.findByText("No jobs match.");

    await user.click(screen.getByRole("checkbox", { name: "failed" }));
    await user.click(screen.getByRole("checkbox", { name: "running" }));
    await user.type(screen.getByLabelText("Queue"), "mail");
    await user.type(screen.getByLabelText("Text"), "timeout");
    await user.type(screen.getByLabelText("Arguments (JSON)"), '{{"customer_id": 42}');
    await user.click(screen.getByRole("button", { name: "Apply" }));

    await waitFor(() => {
      expect(screen.getByTestId("location")).toHaveTextContent(
        "/jobs?status=running%2Cfailed&queue=mail&q=timeout&args=%7B%22customer_id%22%3A+42%7D",
      );
    });
    const last = api.callsTo("GET /api/jobs").at(-1);
    expect(last?.query.get("status")).toBe("running,failed");
    expect(last?.query.get("queue")).toBe("mail");
    expect(last?.query.get("q")).toBe("timeout");
    expect(last?.query.get("args")).toBe('{"customer_id": 42}');
    // the form shows what the URL says
    expect(screen.getByRole("checkbox", { name: "failed" })).toBeChecked();
    expect(screen.getByRole("checkbox", { name: "pending" })).not.toBeChecked();
    expect(screen.getByLabelText("Queue")).toHaveValue("mail");
  });

  it("reads a shared URL into the form and the query", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([]));
    renderApp("/jobs?status=failed&status=bogus,pending&target=app.X&before=900");
    await screen.findByText("No jobs match.");
    expect(screen.getByRole("checkbox", { name: "failed" })).toBeChecked();
    expect(screen.getByRole("checkbox", { name: "pending" })).toBeChecked();
    expect(screen.getByLabelText("Target")).toHaveValue("app.X");
    const call = api.callsTo("GET /api/jobs")[0];
    expect(call?.query.get("status")).toBe("pending,failed");
    expect(call?.query.get("before")).toBe("900");
  });

  it("refuses arguments that are not JSON", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([]));
    const { user } = renderApp("/jobs");
    await screen.findByText("No jobs match.");
    await user.type(screen.getByLabelText("Arguments (JSON)"), "{{nope");
    expect(screen.getByRole("alert")).toHaveTextContent("Arguments must be JSON");
    expect(screen.getByRole("button", { name: "Apply" })).toBeDisabled();
  });
});

describe("the live stream", () => {
  it("upserts each batch: changed rows in place, new jobs on top; a visible indicator says live", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([makeJob({ id: 11, status: "running" }), makeJob({ id: 10, status: "pending" })]));
    renderApp("/jobs");
    await waitFor(() => rowOf(11));
    const source = FakeEventSource.latest();
    expect(source.url).toBe("/api/events");
    expect(screen.getByTestId("live-indicator")).toHaveTextContent("Connecting");
    act(() => {
      source.open();
    });
    expect(screen.getByTestId("live-indicator")).toHaveTextContent("Live");

    act(() => {
      source.emit("jobs", [
        makeJob({ id: 11, status: "completed", finished_at: "2024-05-01T10:00:02Z", started_at: "2024-05-01T10:00:00Z" }),
        makeJob({ id: 12, status: "pending", target: "app.new.Thing" }),
      ]);
    });
    await waitFor(() => {
      expect(rowOf(11)).toHaveTextContent("completed");
    });
    expect(rowOf(11)).toHaveTextContent("2.00 s");
    const rows = [...document.querySelectorAll("tbody tr[data-job-id]")].map((row) => row.getAttribute("data-job-id"));
    expect(rows).toEqual(["12", "11", "10"]);
    expect(api.callsTo("GET /api/jobs")).toHaveLength(1); // no reload
  });

  it("adds no new job that the filter would not show", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([makeJob({ id: 20, status: "failed" })]));
    renderApp("/jobs?status=failed");
    await waitFor(() => rowOf(20));
    act(() => {
      FakeEventSource.latest().emit("jobs", [makeJob({ id: 21, status: "pending" }), makeJob({ id: 22, status: "failed" })]);
    });
    await waitFor(() => rowOf(22));
    expect(document.querySelector('tr[data-job-id="21"]')).toBeNull();
  });

  it("closes while the tab is hidden and reopens, re-reading, on return", async () => {
    const api = fakeApi("viewer");
    api.on("GET /api/jobs", page([makeJob({ id: 30 })]));
    renderApp("/jobs");
    await waitFor(() => rowOf(30));
    const first = FakeEventSource.latest();
    let hidden = true;
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (hidden ? "hidden" : "visible") });
    act(() => {
      document.dispatchEvent(new Event("visibilitychange"));
    });
    expect(first.readyState).toBe(FakeEventSource.CLOSED);
    expect(screen.getByTestId("live-indicator")).toHaveTextContent("Paused");

    hidden = false;
    act(() => {
      document.dispatchEvent(new Event("visibilitychange"));
    });
    expect(FakeEventSource.instances).toHaveLength(2);
    expect(FakeEventSource.latest().readyState).toBe(FakeEventSource.CONNECTING);
    await waitFor(() => {
      expect(api.callsTo("GET /api/jobs")).toHaveLength(2);
    });
  });
});
