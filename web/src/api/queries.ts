// TanStack Query keys and hooks: server state lives in the query cache, nowhere else.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useRef } from 'react';
import { ApiError, errorMessage } from './client';
import { api, listAll } from './endpoints';
import { ENTITY_KINDS, type EntityMap, type EntityType } from './entities';
import type { Id, NodeOutput, NodeType, OutboundRoute } from './types';

export const keys = {
  session: ['session'] as const,
  setup: ['setup'] as const,
  entities: (t: EntityType) => ['entities', t] as const,
  entity: (t: EntityType, id: Id) => ['entities', t, id] as const,
  nodeTypes: ['node-types'] as const,
  nodeOutputs: (typeId: string, payload: string) => ['node-outputs', typeId, payload] as const,
  flows: ['flows'] as const,
  flow: (id: Id) => ['flows', id] as const,
  versions: (id: Id) => ['flows', id, 'versions'] as const,
  prompts: ['prompts'] as const,
  plugins: ['plugins'] as const,
  settings: ['settings'] as const,
  dashboard: ['dashboard'] as const,
  health: ['health'] as const,
  tls: ['system', 'tls'] as const,
  cdrs: (params: unknown) => ['cdrs', params] as const,
  recordings: (params: unknown) => ['recordings', params] as const,
  webhooks: ['webhooks'] as const,
  mail: ['mail-outbox'] as const,
  deliveries: (id: Id) => ['webhooks', id, 'deliveries'] as const,
  activeCalls: ['calls', 'active'] as const,
  outboundRoutes: ['outbound-routes'] as const,
};

export function useSession() {
  return useQuery({
    queryKey: keys.session,
    queryFn: api.auth.me,
    retry: false,
    staleTime: 60_000,
  });
}

export function useEntities<K extends EntityType>(type: K, enabled = true) {
  return useQuery({
    queryKey: keys.entities(type),
    queryFn: () => listAll(ENTITY_KINDS[type].resource) as Promise<EntityMap[K][]>,
    enabled,
    staleTime: 10_000,
  });
}

export function useEntity<K extends EntityType>(type: K, id: Id | null | undefined) {
  return useQuery({
    queryKey: keys.entity(type, id ?? 0),
    queryFn: () => ENTITY_KINDS[type].resource.get(id as Id) as Promise<EntityMap[K]>,
    enabled: id !== null && id !== undefined,
    staleTime: 10_000,
  });
}

export function useSaveEntity<K extends EntityType>(type: K) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id?: Id; body: Partial<EntityMap[K]> }) => {
      const r = ENTITY_KINDS[type].resource;
      return (id ? r.update(id, body as never) : r.create(body as never)) as Promise<EntityMap[K]>;
    },
    onSuccess: (saved) => {
      qc.setQueryData(keys.entity(type, (saved as { id: Id }).id), saved);
      void qc.invalidateQueries({ queryKey: keys.entities(type) });
      // an edit of an entity a flow links changes that flow's draft (not its live version)
      void qc.invalidateQueries({ queryKey: keys.flows });
      void qc.invalidateQueries({ queryKey: ['flows-using'] });
    },
  });
}

export function useDeleteEntity(type: EntityType) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: Id) => ENTITY_KINDS[type].resource.remove(id),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.entities(type) }),
  });
}

export function useNodeTypes() {
  return useQuery({ queryKey: keys.nodeTypes, queryFn: api.nodeTypes.list, staleTime: 60_000 });
}

/**
 * The outputs of one node: the fixed ones from describe(), or for a type whose outputs depend
 * on its config (IVR digits, time-switch rules) what the node's outputs(config) answers, asked
 * of the server and kept while the next answer is on its way so handles never flicker.
 */
export function useNodeOutputs(
  nodeType: NodeType | undefined,
  config: Record<string, unknown>,
  entity: { entity_type: string; entity_id?: Id | null; entity?: unknown } | undefined,
): { outputs: NodeOutput[]; error: string | null } {
  // every node type has outputs(input); the registry may say the answer never changes
  const dynamic = !!nodeType && nodeType.dynamic_outputs !== false;
  // a node that needs an entity has nothing to compute its outputs from until one is linked
  // (or being created): it shows the outputs describe() declares meanwhile
  const unlinked = !!nodeType?.entity_required && !!entity && (entity.entity_id === null || entity.entity_id === undefined) && entity.entity == null;
  const payload = JSON.stringify({ config, entity });
  const q = useQuery({
    queryKey: keys.nodeOutputs(nodeType?.id ?? '', payload),
    queryFn: async () => (await api.nodeTypes.outputs(nodeType!.id, config, entity)).map((o) => ({ ...o, id: String((o as { id?: string; name?: string }).id ?? (o as { name?: string }).name) })),
    enabled: dynamic && !unlinked,
    placeholderData: keepPreviousData,
    staleTime: Infinity,
    retry: (n, e) => !(e instanceof ApiError && e.status < 500) && n < 2,
  });
  // an unusable config keeps the last good handles (and their edges) while it is being fixed
  const lastGood = useRef<NodeOutput[] | null>(null);
  if (q.data) lastGood.current = q.data;
  if (!nodeType) return { outputs: [], error: null };
  if (!dynamic || unlinked) return { outputs: nodeType.outputs, error: null };
  return { outputs: q.data ?? lastGood.current ?? nodeType.outputs, error: q.error ? errorMessage(q.error) : null };
}

export function usePrompts() {
  return useQuery({ queryKey: keys.prompts, queryFn: async () => (await api.prompts.list()).items, staleTime: 30_000 });
}

export function useFlows() {
  return useQuery({ queryKey: keys.flows, queryFn: () => listAll(api.flows) });
}

/** Every outbound route, in the order they are tried. */
export function useOutboundRoutes() {
  return useQuery({ queryKey: keys.outboundRoutes, queryFn: () => listAll(api.outboundRoutes), staleTime: 10_000 });
}

/** Writes the order of every route; the list shows the new order at once and the server's after. */
export function useOrderOutboundRoutes() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (ids: Id[]) => api.outboundRoutes.order(ids),
    onMutate: async (ids) => {
      await qc.cancelQueries({ queryKey: keys.outboundRoutes });
      const before = qc.getQueryData<OutboundRoute[]>(keys.outboundRoutes);
      if (before) qc.setQueryData(keys.outboundRoutes, ids.map((id) => before.find((r) => r.id === id)).filter((r): r is OutboundRoute => !!r));
      return { before };
    },
    onError: (_e, _ids, ctx) => {
      if (ctx?.before) qc.setQueryData(keys.outboundRoutes, ctx.before);
    },
    onSuccess: (routes) => qc.setQueryData(keys.outboundRoutes, routes),
    onSettled: () => void qc.invalidateQueries({ queryKey: keys.outboundRoutes }),
  });
}
