// The entity types a flow node can link (`EntityKind` in host/flow/src/entity.rs), and the pages that manage them.
// One table, so the CRUD pages, the inline creation in the editor and the selector agree.
import { api, type Resource } from './endpoints';
import type { Conference, Extension, Id, InboundNumber, IvrMenu, RingGroup, TimeSwitch, Trunk, VoicemailBox } from './types';

export type EntityType =
  | 'extension'
  | 'trunk'
  | 'inbound_number'
  | 'voicemail_box'
  | 'ring_group'
  | 'ivr_menu'
  | 'time_switch'
  | 'conference_bridge';

export interface EntityMap {
  extension: Extension;
  trunk: Trunk;
  inbound_number: InboundNumber;
  voicemail_box: VoicemailBox;
  ring_group: RingGroup;
  ivr_menu: IvrMenu;
  time_switch: TimeSwitch;
  conference_bridge: Conference;
}

export type AnyEntity = EntityMap[EntityType];

export type EntityStatus = { tone: 'ok' | 'warn' | 'bad' | 'idle'; text: string };

export interface EntityKind<K extends EntityType = EntityType> {
  type: K;
  singular: string;
  plural: string;
  /** "New IVR menu…" */
  newLabel: string;
  /** route of the CRUD page */
  route: string;
  resource: Resource<EntityMap[K]>;
  title(e: EntityMap[K]): string;
  subtitle?(e: EntityMap[K]): string | undefined;
}

export const ENTITY_KINDS: { [K in EntityType]: EntityKind<K> } = {
  extension: {
    type: 'extension',
    singular: 'extension',
    plural: 'Extensions',
    newLabel: 'New extension…',
    route: '/extensions',
    resource: api.extensions,
    title: (e) => `${e.extension} ${e.name}`,
    subtitle: (e) => e.sip_username,
  },
  trunk: {
    type: 'trunk',
    singular: 'trunk',
    plural: 'Trunks',
    newLabel: 'New trunk…',
    route: '/trunks',
    resource: api.trunks,
    title: (e) => e.name,
    subtitle: (e) => (e.type === 'register' ? `${e.username ?? ''}@${e.host ?? ''}` : (e.remote_hosts ?? []).join(', ')),
  },
  inbound_number: {
    type: 'inbound_number',
    singular: 'number',
    plural: 'Numbers',
    newLabel: 'New number…',
    route: '/numbers',
    resource: api.numbers,
    title: (e) => (e.name ? `${e.number} ${e.name}` : e.number),
  },
  voicemail_box: {
    type: 'voicemail_box',
    singular: 'voicemail box',
    plural: 'Voicemail boxes',
    newLabel: 'New voicemail box…',
    route: '/voicemail',
    resource: api.voicemailBoxes,
    title: (e) => e.name,
    subtitle: (e) => e.email_address ?? undefined,
  },
  ring_group: {
    type: 'ring_group',
    singular: 'ring group',
    plural: 'Ring groups',
    newLabel: 'New ring group…',
    route: '/ring-groups',
    resource: api.ringGroups,
    title: (e) => e.name,
    subtitle: (e) => `${e.strategy.replace('_', ' ')}, ${e.members?.length ?? 0} members`,
  },
  ivr_menu: {
    type: 'ivr_menu',
    singular: 'IVR menu',
    plural: 'IVR menus',
    newLabel: 'New IVR menu…',
    route: '/ivr-menus',
    resource: api.ivrMenus,
    title: (e) => e.name,
    subtitle: (e) => `digits ${Object.keys(e.options ?? {}).join(' ') || '—'}`,
  },
  time_switch: {
    type: 'time_switch',
    singular: 'time switch',
    plural: 'Time switches',
    newLabel: 'New time switch…',
    route: '/time-switches',
    resource: api.timeSwitches,
    title: (e) => e.name,
    subtitle: (e) => e.timezone,
  },
  conference_bridge: {
    type: 'conference_bridge',
    singular: 'conference',
    plural: 'Conferences',
    newLabel: 'New conference…',
    route: '/conferences',
    resource: api.conferences,
    title: (e) => (e.extension ? `${e.extension} ${e.name}` : e.name),
  },
};

export function entityKind(t: string | null | undefined): EntityKind | undefined {
  return t && t in ENTITY_KINDS ? (ENTITY_KINDS[t as EntityType] as unknown as EntityKind) : undefined;
}

/**
 * The entity a built-in node type links, for a registry that does not say (node types of the
 * registry carry `entity_kind`; see API-NEEDS.md §4). Plugins link none unless they declare one.
 */
const BUILTIN_ENTITY: Record<string, EntityType> = {
  inbound_number: 'inbound_number',
  time_switch: 'time_switch',
  ivr_menu: 'ivr_menu',
  ring_group: 'ring_group',
  extension: 'extension',
  voicemail: 'voicemail_box',
  conference: 'conference_bridge',
};

export function entityTypeForNode(nodeType: { id: string; entity_type?: string | null } | undefined): EntityType | undefined {
  if (!nodeType) return undefined;
  if (nodeType.entity_type) return entityKind(nodeType.entity_type)?.type;
  return BUILTIN_ENTITY[nodeType.id];
}

/** Status shown beside an entity in selectors and lists. `live` is the /ws registration count. */
export function entityStatus(type: EntityType, e: AnyEntity, live?: { registrations?: number; trunk?: string }): EntityStatus | undefined {
  if (type === 'extension') {
    const n = live?.registrations ?? (e as Extension).registration_count;
    if (n === undefined) return undefined;
    return n > 0 ? { tone: 'ok', text: n > 1 ? `online (${n})` : 'online' } : { tone: 'idle', text: 'offline' };
  }
  if (type === 'trunk') {
    const t = e as Trunk;
    if (!t.enabled) return { tone: 'idle', text: 'disabled' };
    const s = live?.trunk ?? t.status;
    if (!s) return undefined;
    if (s === 'registered' || s === 'up' || s === 'ok') return { tone: 'ok', text: s };
    if (s === 'failed' || s === 'stopped' || s === 'down') return { tone: 'bad', text: s };
    if (s === 'unmonitored' || s === 'unknown') return { tone: 'idle', text: s === 'unmonitored' ? 'not monitored' : s };
    return { tone: 'warn', text: s };
  }
  if (type === 'inbound_number') return (e as InboundNumber).enabled ? undefined : { tone: 'idle', text: 'disabled' };
  return undefined;
}

export type { Id };
