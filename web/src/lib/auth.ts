// Who is signed in (GET /api/auth/me), what their role lets them do, and signing in and out.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import { ApiError, api, setCsrfToken } from "./api";
import type { Me, Role } from "./types";

export const ME_KEY = ["me"] as const;

// Mirrors errands.access: viewer reads; operator also cancels, retries, enqueues, pauses; admin also administers.
export type Action = "read" | "operate" | "administer";
const ROLE_ACTIONS: Record<Role, readonly Action[]> = {
  viewer: ["read"],
  operator: ["read", "operate"],
  admin: ["read", "operate", "administer"],
};

export function may(role: Role | undefined, action: Action): boolean {
  return role !== undefined && ROLE_ACTIONS[role].includes(action);
}

async function fetchMe(): Promise<Me | null> {
  try {
    const me = await api<Me>("/api/auth/me");
    setCsrfToken(me.csrf_token);
    return me;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setCsrfToken(null);
      return null; // signed out: an answer, not a failure
    }
    throw error;
  }
}

export function useMe() {
  return useQuery({ queryKey: ME_KEY, queryFn: fetchMe, retry: false, staleTime: 5 * 60_000 });
}

/** May the signed-in user do `action`? False while unknown, so no button shows that would be refused. */
export function useMay(action: Action): boolean {
  const { data } = useMe();
  return may(data?.role, action);
}

interface LoginAnswer {
  csrf_token: string | null;
  user?: string;
  role?: Role;
}

export function useLogin() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: (credentials: { username: string; password: string }) =>
      api<LoginAnswer>("/api/auth/login", { method: "POST", body: credentials }),
    onSuccess: async (answer) => {
      setCsrfToken(answer.csrf_token);
      queryClient.removeQueries({ predicate: (query) => query.queryKey[0] !== ME_KEY[0] });
      await queryClient.invalidateQueries({ queryKey: ME_KEY });
    },
  });
}

export function useLogout() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: () => api<unknown>("/api/auth/logout", { method: "POST" }),
    onSettled: () => {
      setCsrfToken(null);
      queryClient.clear();
      queryClient.setQueryData(ME_KEY, null);
    },
  });
}

/** Only a path on this site: `next` comes from the URL, so it must not send a visitor elsewhere. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/jobs";
  if (next.startsWith("/login")) return "/jobs";
  return next;
}
