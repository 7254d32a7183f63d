import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";

import { api, listOf } from "../../lib/api";
import type { QueueInfo } from "../../lib/types";

export const QUEUES_KEY = ["queues"] as const;

export function useQueues() {
  return useQuery({
    queryKey: QUEUES_KEY,
    queryFn: async ({ signal }) => listOf<QueueInfo>(await api<unknown>("/api/queues", { signal }), "queues"),
    refetchInterval: 5000,
  });
}

export function usePauseQueue() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: ({ name, pause }: { name: string; pause: boolean }) =>
      api<unknown>(`/api/queues/${encodeURIComponent(name)}/${pause ? "pause" : "resume"}`, { method: "POST" }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: QUEUES_KEY }),
  });
}
