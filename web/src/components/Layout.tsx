// The signed-in frame: navigation that follows the role, who is signed in, logout. A signed-out visitor goes to
// /login?next=<where they were going>.
import { useQueryClient } from "@tanstack/react-query";
import { Suspense, useEffect } from "react";
import { NavLink, Navigate, Outlet, useLocation, useNavigate } from "react-router";

import { setUnauthorizedHandler } from "../lib/api";
import { ME_KEY, may, useLogout, useMe } from "../lib/auth";
import { ErrorNote, Loading } from "./ui";

const LINKS = [
  { to: "/", label: "Overview", end: true },
  { to: "/jobs", label: "Jobs", end: true },
  { to: "/failures", label: "Failures" },
  { to: "/queues", label: "Queues" },
  { to: "/workers", label: "Workers" },
  { to: "/jobs/logs", label: "Logs" },
] as const;

export function Layout() {
  const me = useMe();
  const location = useLocation();
  const queryClient = useQueryClient();
  useEffect(() => {
    // any 401 means the session is gone: forget who we were, which sends this frame to /login
    setUnauthorizedHandler(() => {
      queryClient.setQueryData(ME_KEY, null);
    });
    return () => {
      setUnauthorizedHandler(null);
    };
  }, [queryClient]);

  if (me.isPending) return <Loading what="your session" />;
  if (me.error) return <ErrorNote error={me.error}>Could not reach the server.</ErrorNote>;
  if (!me.data) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }
  return (
    <div className="frame">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">errands</span>
        <nav aria-label="Main">
          <ul>
            {LINKS.map((link) => (
              <li key={link.to}>
                <NavLink to={link.to} end={"end" in link ? link.end : false}>
                  {link.label}
                </NavLink>
              </li>
            ))}
            {may(me.data.role, "administer") && (
              <li>
                <NavLink to="/audit">Audit</NavLink>
              </li>
            )}
          </ul>
        </nav>
        <UserBox user={me.data.user} role={me.data.role} />
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading what="the page" />}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}

function UserBox({ user, role }: { user: string; role: string }) {
  const logout = useLogout();
  const navigate = useNavigate();
  return (
    <div className="userbox">
      <span data-testid="whoami">
        {user} <span className="muted">({role})</span>
      </span>
      <button
        type="button"
        disabled={logout.isPending}
        onClick={() => {
          logout.mutate(undefined, {
            onSettled: () => {
              void navigate("/login", { replace: true });
            },
          });
        }}
      >
        Sign out
      </button>
    </div>
  );
}
