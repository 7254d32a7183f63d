import { screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { fakeApi, renderApp, reply } from "../../../test/fakes";

describe("signing in", () => {
  it("sends a signed-out visitor from /jobs to /login and back to /jobs after signing in", async () => {
    const api = fakeApi(null);
    let signedIn = false;
    api.on("GET /api/auth/me", () =>
      signedIn ? { user: "ann", role: "viewer", csrf_token: "t1" } : reply(401, { error: "not signed in" }),
    );
    api.on("POST /api/auth/login", () => {
      signedIn = true;
      return { user: "ann", role: "viewer", csrf_token: "t1" };
    });
    api.on("GET /api/jobs", { jobs: [], next: null, count: 0, count_exact: true });

    const { user } = renderApp("/jobs?status=failed");
    await waitFor(() => {
      expect(screen.getByTestId("location")).toHaveTextContent("/login?next=%2Fjobs%3Fstatus%3Dfailed");
    });

    const form = screen.getByRole("form", { name: "Sign in to errands" });
    const username = form.querySelector<HTMLInputElement>('input[name="username"]');
    const password = form.querySelector<HTMLInputElement>('input[name="password"]');
    expect(username).not.toBeNull();
    expect(password?.type).toBe("password");
    await user.type(screen.getByLabelText("Username"), "ann");
    await user.type(screen.getByLabelText("Password"), "s3cret-pass{Enter}"); // Enter submits

    await waitFor(() => {
      expect(screen.getByTestId("location")).toHaveTextContent(/^\/jobs\?status=failed$/);
    });
    expect(api.callsTo("POST /api/auth/login")[0]?.body).toEqual({ username: "ann", password: "s3cret-pass" });
    expect(await screen.findByTestId("whoami")).toHaveTextContent("ann (viewer)");
  });

  it("says so when the password is wrong, and stays on the page", async () => {
    const api = fakeApi(null);
    api.on("POST /api/auth/login", reply(401, { error: "wrong username or password" }));
    const { user } = renderApp("/login");
    await user.type(await screen.findByLabelText("Username"), "ann");
    await user.type(screen.getByLabelText("Password"), "nope-nope{Enter}");
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong username or password.");
    expect(screen.getByTestId("location")).toHaveTextContent("/login");
  });

  it("never follows a next that leaves the site", async () => {
    const api = fakeApi(null);
    api.on("POST /api/auth/login", () => {
      api.on("GET /api/auth/me", { user: "ann", role: "viewer", csrf_token: "t" });
      return { csrf_token: "t" };
    });
    api.on("GET /api/jobs", { jobs: [], next: null, count: 0, count_exact: true });
    const { user } = renderApp("/login?next=//evil.example/x");
    await user.type(await screen.findByLabelText("Username"), "ann");
    await user.type(screen.getByLabelText("Password"), "s3cret-pass{Enter}");
    await waitFor(() => {
      expect(screen.getByTestId("location")).toHaveTextContent(/^\/jobs$/);
    });
  });

  it("signs out on the server and goes to /login; the CSRF token rides along", async () => {
    const api = fakeApi("operator");
    api.on("POST /api/auth/logout", reply(204));
    api.on("GET /api/stats", { by_status: {}, by_queue: {}, per_minute: [], oldest_due: {} });
    const { user } = renderApp("/");
    await user.click(await screen.findByRole("button", { name: "Sign out" }));
    await waitFor(() => {
      expect(screen.getByTestId("location")).toHaveTextContent("/login");
    });
    expect(api.callsTo("POST /api/auth/logout")[0]?.headers.get("X-CSRF-Token")).toBe("csrf-123");
  });
});
