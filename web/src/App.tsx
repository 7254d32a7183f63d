// The routes: /login outside the signed-in frame; everything else inside it.
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { type ReactNode, lazy, useState } from "react";
import { BrowserRouter, Route, Routes } from "react-router";

import { Layout } from "./components/Layout";
import { LoginPage } from "./features/auth/LoginPage";
import { JobDetailPage } from "./features/jobs/JobDetailPage";
import { JobsPage } from "./features/jobs/JobsPage";
import { ApiError } from "./lib/api";
import { useMay } from "./lib/auth";

// /login and the jobs pages come with the first load; the others (the charts' library among them) on first visit
const OverviewPage = lazy(() => import("./features/overview/OverviewPage").then((m) => ({ default: m.OverviewPage })));
const FailuresPage = lazy(() => import("./features/failures/FailuresPage").then((m) => ({ default: m.FailuresPage })));
const QueuesPage = lazy(() => import("./features/queues/QueuesPage").then((m) => ({ default: m.QueuesPage })));
const WorkersPage = lazy(() => import("./features/workers/WorkersPage").then((m) => ({ default: m.WorkersPage })));
const LogsPage = lazy(() => import("./features/logs/LogsPage").then((m) => ({ default: m.LogsPage })));
const AuditPage = lazy(() => import("./features/audit/AuditPage").then((m) => ({ default: m.AuditPage })));

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // a 4xx will not change by asking again; a dropped connection or a 503 may
        retry: (count, error) => count < 2 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
        staleTime: 2000,
      },
      mutations: { retry: false },
    },
  });
}

function AdminOnly({ children }: { children: ReactNode }) {
  return useMay("administer") ? children : <p className="error">Only an admin may see this page.</p>;
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route element={<Layout />}>
        <Route index element={<OverviewPage />} />
        <Route path="/overview" element={<OverviewPage />} />
        <Route path="/jobs" element={<JobsPage />} />
        <Route path="/jobs/logs" element={<LogsPage />} />
        <Route path="/jobs/:id" element={<JobDetailPage />} />
        <Route path="/failures" element={<FailuresPage />} />
        <Route path="/queues" element={<QueuesPage />} />
        <Route path="/workers" element={<WorkersPage />} />
        <Route
          path="/audit"
          element={
            <AdminOnly>
              <AuditPage />
            </AdminOnly>
          }
        />
        <Route path="*" element={<p>There is no such page.</p>} />
      </Route>
    </Routes>
  );
}

export function App() {
  const [queryClient] = useState(makeQueryClient);
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </QueryClientProvider>
  );
}
