// The entity forms, shared by the CRUD pages and the flow editor's inline creation and side
// panel: one component per entity type, one save path, API errors shown next
// to the field they name.
import { useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { ApiError, errorMessage } from '../../api/client';
import { ENTITY_KINDS, type EntityMap, type EntityType } from '../../api/entities';
import { isRequired, lengthHint, range } from '../../api/constraints';
import { api } from '../../api/endpoints';
import { useEntities, useFlows, useSaveEntity } from '../../api/queries';
import type { Id } from '../../api/types';
import { Checkbox, ErrorBanner, NumberInput, Select, Switch, TextInput } from '../common/ui';
import { DigitMapEditor, MembersEditor, OverridesEditor, TimeRulesEditor, WeeklyGrid } from './editors';
import { FollowMeFields, followMeBody } from './followMe';
import { ExtensionOutboundFields, TrunkConnectionFields, TrunkNumberingFields } from './outbound';
import { PromptPicker } from './PromptPicker';
import { FlowsUsing } from '../flow/DraftStatus';

type Values = Record<string, unknown>;

/** What a new entity of each type starts with (the data model's defaults). */
export function entityDefaults(type: EntityType): Values {
  switch (type) {
    case 'extension':
      return {
        extension: '', name: '', email: '', sip_username: '', sip_password: '', ring_timeout: 30, dnd: false, follow_me_enabled: false, follow_me_numbers: [], follow_me_mode: 'sequential', follow_me_confirm: true, recording_mode: 'off', srtp: 'optional', max_registrations: 5, mwi_unsolicited: false,
        // calling out: the server's defaults (international and premium off)
        outbound_caller_id_name: '', outbound_caller_id_num: '', emergency_caller_id_num: '', call_classes: ['local', 'national'], max_outbound_calls: 2, daily_outbound_minutes: 0,
      };
    case 'trunk':
      return { name: '', type: 'register', enabled: true, host: '', port: 5060, transport: 'udp', username: '', password: '', auth_username: '', register_expiry: 300, remote_hosts: [], local_host: '', codecs: ['g711u', 'g711a'], max_channels: 0, caller_id_name: '', caller_id_num: '', prefix_strip: 0, prefix_add: '', priority: 10, outbound_proxy: '', options_interval: 30, country_code: '', national_prefix: '', international_prefix: '', tls_verify: true, srtp: 'off', record_inbound: false, record_outbound: false };
    case 'inbound_number':
      return { number: '', name: '', trunk_id: null, flow_id: null, flow_entry_node: null, enabled: true };
    case 'voicemail_box':
      return { name: '', mailbox_number: '', pin: '', greeting_type: 'default', email_notify: false, email_address: '', email_attach_audio: true, max_message_duration: 120, max_messages: 50, retention_days: 90, notify_extension_id: null };
    case 'ring_group':
      return { name: '', strategy: 'ring_all', ring_timeout: 30, members: [], caller_id_mode: 'pass', caller_id_value: '' };
    case 'ivr_menu':
      return { name: '', greeting_file: '', greeting_tts: '', timeout: 10, max_retries: 3, digit_timeout: 3, options: { '1': '' } };
    case 'time_switch':
      return {
        name: '',
        timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
        rules: [{ label: 'Business hours', days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' }],
        overrides: [],
      };
    case 'conference_bridge':
      return { name: '', extension: '', pin: '', max_members: 10, record: false, mute_on_join: false, announce_joins: false };
  }
}

const WRITE_ONLY = ['sip_password', 'password', 'pin'];

/**
 * The body sent to the API: empty optional text becomes null, write-only secrets left empty
 * on an edit are not sent (the server keeps the stored one), read-only fields are dropped.
 */
export function toRequestBody(type: EntityType, v: Values, editing: boolean): Values {
  const out: Values = {};
  const readOnly = new Set(['id', 'created_at', 'updated_at', 'registration_count', 'status', 'status_detail', 'message_count', 'unread_count', 'participant_count', 'password_set', 'pin_set']);
  // text the API takes as a plain string (never null): '' is a value there
  // (a trunk's numbering rules: '' clears them, null would keep the stored ones)
  const required = new Set(['name', 'extension', 'number', 'sip_username', 'prefix_add', 'country_code', 'national_prefix', 'international_prefix']);
  for (const [k, val] of Object.entries(v)) {
    if (readOnly.has(k)) continue;
    if (WRITE_ONLY.includes(k) && (val === '' || val === undefined || val === null)) {
      if (editing || type !== 'extension' || k !== 'sip_password') continue;
    }
    out[k] = val === '' && !required.has(k) ? null : val;
  }
  if (type === 'conference_bridge' && out.extension === null) delete out.extension;
  if (type === 'extension' && Array.isArray(out.follow_me_numbers)) out.follow_me_numbers = followMeBody(out.follow_me_numbers as never);
  return out;
}

export function generatePassword(len = 20): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = new Uint32Array(len);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

export interface EntityFormProps<K extends EntityType> {
  type: K;
  /** the entity to edit; absent to create one */
  entity?: EntityMap[K] | null;
  /** prefill for a new one (e.g. the label of the node it is created from) */
  initial?: Partial<EntityMap[K]>;
  onSaved: (e: EntityMap[K]) => void;
  onCancel?: () => void;
  /** every change, before saving: the editor previews a node's outputs from it */
  onDraft?: (v: Values) => void;
  /** render extra actions beside Save (the editor's "Delete" with impact) */
  extraActions?: ReactNode;
  idPrefix?: string;
  submitLabel?: string;
}

/** Entities whose settings a published flow version captures (extensions and numbers stay live). */
const FLOW_CONFIG_KINDS = new Set<string>(['ivr_menu', 'ring_group', 'time_switch', 'voicemail_box', 'conference_bridge']);

export function EntityForm<K extends EntityType>({ type, entity, initial, onSaved, onCancel, onDraft, extraActions, idPrefix, submitLabel }: EntityFormProps<K>) {
  const editing = !!entity;
  const start = useMemo<Values>(
    () => ({ ...entityDefaults(type), ...(initial as Values), ...(entity as unknown as Values) }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [type, entity],
  );
  const [values, setValues] = useState<Values>(start);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [banner, setBanner] = useState<string | null>(null);
  const save = useSaveEntity(type);
  const idp = idPrefix ?? `${type}-${(entity as { id?: Id } | undefined)?.id ?? 'new'}`;

  useEffect(() => setValues(start), [start]);

  // after a refused save, the first field in error is focused (and scrolled to): it may be
  // far down the drawer, such as a follow-me number's ring time
  const formRef = useRef<HTMLFormElement>(null);
  const [refused, setRefused] = useState(0);
  useEffect(() => {
    if (refused) formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [refused]);

  const set = (k: string, v: unknown) => {
    setValues((prev) => {
      const next = { ...prev, [k]: v };
      onDraft?.(next);
      return next;
    });
    if (errors[k]) setErrors((e) => ({ ...e, [k]: '' }));
  };
  // a list's editor moves its entries' errors with them (`follow_me_numbers.2.timeout`)
  const remapErrors = (fn: (field: string) => string | null) =>
    setErrors((e) => {
      const out: Record<string, string> = {};
      for (const [k, m] of Object.entries(e)) {
        const to = m ? fn(k) : null;
        if (to !== null) out[to] = m;
      }
      return out;
    });

  const submit = async (ev: React.FormEvent) => {
    ev.preventDefault();
    setBanner(null);
    setErrors({});
    try {
      const saved = await save.mutateAsync({ id: (entity as { id?: Id } | undefined)?.id, body: toRequestBody(type, values, editing) as never });
      onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) {
        const fe = e.fieldErrors();
        setErrors(fe);
        setRefused((n) => n + 1);
        const unnamed = e.details.filter((d) => !d.field).map((d) => d.message);
        const shown = Object.keys(fe).some((f) => FIELDS_SHOWN[type].some((s) => f === s || f.startsWith(`${s}.`)));
        setBanner(shown && unnamed.length === 0 ? null : [e.message, ...unnamed].join(' '));
      } else setBanner(errorMessage(e));
    }
  };

  const p = { values, set, errors, idp, remapErrors };
  return (
    <form ref={formRef} onSubmit={submit} noValidate aria-label={`${editing ? 'Edit' : 'New'} ${ENTITY_KINDS[type].singular}`}>
      <ErrorBanner error={banner} />
      {editing && FLOW_CONFIG_KINDS.has(type) && <FlowsUsing entityType={type} entityId={(entity as { id: Id }).id} />}
      {type === 'extension' && <ExtensionFields {...p} editing={editing} />}
      {type === 'trunk' && <TrunkFields {...p} editing={editing} />}
      {type === 'inbound_number' && <NumberFields {...p} />}
      {type === 'voicemail_box' && <VoicemailFields {...p} editing={editing} />}
      {type === 'ring_group' && <RingGroupFields {...p} />}
      {type === 'ivr_menu' && <IvrFields {...p} />}
      {type === 'time_switch' && <TimeSwitchFields {...p} />}
      {type === 'conference_bridge' && <ConferenceFields {...p} editing={editing} />}
      <div className="mt-4 flex flex-wrap items-center justify-end gap-2">
        {extraActions}
        {onCancel && (
          <button type="button" className="btn" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>
          {save.isPending ? 'Saving…' : (submitLabel ?? (editing ? 'Save' : `Create ${ENTITY_KINDS[type].singular}`))}
        </button>
      </div>
    </form>
  );
}

/** Field names each form shows; an error on any other field goes in the banner. */
const FIELDS_SHOWN: Record<EntityType, string[]> = {
  extension: ['extension', 'name', 'email', 'sip_username', 'sip_password', 'ring_timeout', 'dnd', 'follow_me_enabled', 'follow_me_numbers', 'follow_me_mode', 'follow_me_confirm', 'recording_mode', 'srtp', 'max_registrations', 'mwi_unsolicited', 'outbound_caller_id_name', 'outbound_caller_id_num', 'emergency_caller_id_num', 'call_classes', 'max_outbound_calls', 'daily_outbound_minutes'],
  trunk: ['name', 'type', 'enabled', 'host', 'port', 'transport', 'username', 'password', 'auth_username', 'register_expiry', 'remote_hosts', 'local_host', 'codecs', 'max_channels', 'caller_id_name', 'caller_id_num', 'prefix_strip', 'prefix_add', 'priority', 'outbound_proxy', 'options_interval', 'country_code', 'national_prefix', 'international_prefix', 'tls_verify', 'srtp', 'record_inbound', 'record_outbound'],
  inbound_number: ['number', 'name', 'trunk_id', 'flow_id', 'flow_entry_node', 'enabled'],
  voicemail_box: ['name', 'mailbox_number', 'pin', 'greeting_type', 'email_notify', 'email_address', 'email_attach_audio', 'max_message_duration', 'max_messages', 'retention_days', 'notify_extension_id'],
  ring_group: ['name', 'strategy', 'ring_timeout', 'members', 'caller_id_mode', 'caller_id_value'],
  ivr_menu: ['name', 'greeting_file', 'greeting_tts', 'timeout', 'max_retries', 'digit_timeout', 'options'],
  time_switch: ['name', 'timezone', 'rules', 'overrides'],
  conference_bridge: ['name', 'extension', 'pin', 'max_members', 'record', 'mute_on_join', 'announce_joins'],
};

interface FP {
  values: Values;
  set: (k: string, v: unknown) => void;
  errors: Record<string, string>;
  idp: string;
  remapErrors: (fn: (field: string) => string | null) => void;
  editing?: boolean;
}

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));
const num = (v: unknown) => (typeof v === 'number' ? v : null);

function ExtensionFields({ values: v, set, errors: e, idp, editing, remapErrors }: FP) {
  const [show, setShow] = useState(false);
  return (
    <>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-extension`} label="Extension number" required value={str(v.extension)} error={e.extension} help="2–6 digits"
          onChange={(x) => {
            set('extension', x);
            if (!editing && (!v.sip_username || v.sip_username === v.extension)) set('sip_username', x);
          }}
        />
        <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
        <TextInput id={`${idp}-email`} label="Email" type="email" value={str(v.email)} error={e.email} onChange={(x) => set('email', x)} />
        <TextInput id={`${idp}-sip_username`} label="SIP username" required value={str(v.sip_username)} error={e.sip_username} onChange={(x) => set('sip_username', x)} autoComplete="off" />
      </div>
      <div className="mb-3">
        <div className="flex items-end gap-2">
          <div className="flex-1">
            <TextInput
              id={`${idp}-sip_password`}
              label="SIP password"
              type={show ? 'text' : 'password'}
              required={!editing}
              value={str(v.sip_password)}
              error={e.sip_password}
              autoComplete="new-password"
              help={editing ? 'Leave empty to keep the current password.' : `${cap(lengthHint('extension', 'sip_password') ?? '')}.`}
              onChange={(x) => set('sip_password', x)}
              className="mb-0"
            />
          </div>
          <button type="button" className="btn mb-[1.35rem]" onClick={() => { set('sip_password', generatePassword()); setShow(true); }}>
            Generate
          </button>
        </div>
      </div>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <NumberInput id={`${idp}-ring_timeout`} label="Ring timeout (s)" min={5} max={300} value={num(v.ring_timeout)} error={e.ring_timeout} onChange={(x) => set('ring_timeout', x)} />
        <NumberInput id={`${idp}-max_registrations`} label="Max devices" min={1} max={20} value={num(v.max_registrations)} error={e.max_registrations} onChange={(x) => set('max_registrations', x)} />
        <Select id={`${idp}-recording_mode`} label="Recording" value={str(v.recording_mode)} error={e.recording_mode} onChange={(x) => set('recording_mode', x)}
          options={[{ value: 'off', label: 'Off' }, { value: 'always', label: 'Always' }, { value: 'on_demand', label: 'On demand' }]} />
      </div>
      <SrtpSelect id={`${idp}-srtp`} value={str(v.srtp)} error={e.srtp} onChange={(x) => set('srtp', x)} />
      <Checkbox id={`${idp}-dnd`} label="Do not disturb" checked={v.dnd === true} error={e.dnd} onChange={(x) => set('dnd', x)} />
      <Checkbox id={`${idp}-mwi_unsolicited`} label="Unsolicited voicemail lamp (MWI)" checked={v.mwi_unsolicited === true} error={e.mwi_unsolicited}
        help="For phones that do not subscribe: FlowPBX sends them the message-waiting state when they register and whenever it changes."
        onChange={(x) => set('mwi_unsolicited', x)} />
      <FollowMeFields values={v} set={set} errors={e} remapErrors={remapErrors} idp={idp} />
      <ExtensionOutboundFields values={v} set={set} errors={e} idp={idp} />
    </>
  );
}

const SRTP_HELP: Record<string, string> = {
  off: 'Plain RTP only; an offer that requires SRTP is refused.',
  optional: 'Offers RTP/AVP with SDES keys; encrypted when the other end takes them.',
  required: 'Offers RTP/SAVP; a call without usable SDES keys is refused (488).',
};

/** The SRTP (SDES) policy of an extension's or a trunk's media. */
function SrtpSelect({ id, value, error, onChange }: { id: string; value: string; error?: string; onChange: (v: string) => void }) {
  return (
    <Select id={id} label="Media encryption (SRTP)" value={value} error={error} onChange={onChange} help={SRTP_HELP[value]}
      options={[{ value: 'off', label: 'Off' }, { value: 'optional', label: 'Optional' }, { value: 'required', label: 'Required' }]} />
  );
}

const CODECS = [
  { key: 'g711u', label: 'G.711 µ-law' },
  { key: 'g711a', label: 'G.711 A-law' },
  { key: 'opus', label: 'Opus' },
];

function TrunkFields({ values: v, set, errors: e, idp, editing }: FP) {
  const codecs = (v.codecs as string[]) ?? [];
  const reg = v.type === 'register';
  return (
    <>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
        <Select id={`${idp}-type`} label="Type" required={isRequired('trunk', 'type', v)} value={str(v.type)} error={e.type} onChange={(x) => set('type', x)}
          options={[{ value: 'register', label: 'Registration (username/password)' }, { value: 'ip', label: 'IP authentication' }]} />
      </div>
      <Checkbox id={`${idp}-enabled`} label="Enabled" checked={v.enabled === true} onChange={(x) => set('enabled', x)} />
      {reg ? (
        <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
          <TextInput id={`${idp}-host`} label="Registrar host" required={isRequired('trunk', 'host', v)} className="sm:col-span-2" value={str(v.host)} error={e.host} onChange={(x) => set('host', x)} />
          <NumberInput id={`${idp}-port`} label="Port" min={1} max={65535} value={num(v.port)} error={e.port} onChange={(x) => set('port', x)} />
          <Select id={`${idp}-transport`} label="Transport" value={str(v.transport)} error={e.transport}
            onChange={(x) => {
              set('transport', x);
              // verification can be off only over TLS
              if (x !== 'tls') set('tls_verify', true);
            }}
            options={['udp', 'tcp', 'tls'].map((t) => ({ value: t, label: t.toUpperCase() }))} />
          <TextInput id={`${idp}-username`} label="Username" required={isRequired('trunk', 'username', v)} value={str(v.username)} error={e.username} onChange={(x) => set('username', x)} autoComplete="off" />
          <TextInput id={`${idp}-password`} label="Password" type="password" required={isRequired('trunk', 'password', v) && (!editing || !v.password_set)} value={str(v.password)} error={e.password} autoComplete="new-password"
            help={editing ? (v.password_set ? 'A password is stored; leave empty to keep it.' : 'No password stored.') : undefined} onChange={(x) => set('password', x)} />
          <TextInput id={`${idp}-auth_username`} label="Auth username" help="If the carrier's differs from the username" value={str(v.auth_username)} error={e.auth_username} onChange={(x) => set('auth_username', x)} />
          <NumberInput id={`${idp}-register_expiry`} label="Register every (s)" min={60} value={num(v.register_expiry)} error={e.register_expiry} onChange={(x) => set('register_expiry', x)} />
          {v.transport === 'tls' && (
            <div className="sm:col-span-3">
              <Checkbox id={`${idp}-tls_verify`} label="Verify the carrier's TLS certificate" checked={v.tls_verify !== false} error={e.tls_verify}
                help={v.tls_verify === false
                  ? 'Off: any certificate is accepted — encrypted, but the carrier is not authenticated. Only for a carrier with a private CA.'
                  : 'Against the public CAs and this server\'s system store, for the registrar host (or outbound proxy).'}
                onChange={(x) => set('tls_verify', x)} />
            </div>
          )}
        </div>
      ) : (
        <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
          <div className="mb-3">
            <label className={`label ${isRequired('trunk', 'remote_hosts', v) ? "after:ml-0.5 after:text-red-600 after:content-['*']" : ''}`} htmlFor={`${idp}-remote_hosts`}>
              Allowed hosts
            </label>
            <textarea id={`${idp}-remote_hosts`} className={`input ${e.remote_hosts ? 'input-error' : ''}`} rows={3} placeholder="One IP or CIDR per line"
              aria-invalid={e.remote_hosts ? true : undefined} aria-describedby={e.remote_hosts ? `${idp}-remote_hosts-error` : undefined}
              value={((v.remote_hosts as string[]) ?? []).join('\n')}
              onChange={(ev) => set('remote_hosts', ev.target.value.split('\n').map((s) => s.trim()).filter(Boolean))} />
            {e.remote_hosts && <p id={`${idp}-remote_hosts-error`} role="alert" className="mt-1 text-xs text-red-600">{e.remote_hosts}</p>}
          </div>
          <div>
            <TextInput id={`${idp}-host`} label="Outbound host" value={str(v.host)} error={e.host} onChange={(x) => set('host', x)} />
            <TextInput id={`${idp}-local_host`} label="Local bind address" value={str(v.local_host)} error={e.local_host} onChange={(x) => set('local_host', x)} />
          </div>
        </div>
      )}
      <TrunkConnectionFields values={v} set={set} errors={e} idp={idp} />
      <fieldset className="mb-3">
        <legend className="label">Codecs</legend>
        <div className="flex flex-wrap gap-4">
          {CODECS.map((c) => (
            <label key={c.key} className="flex items-center gap-1.5 text-sm">
              <input type="checkbox" checked={codecs.includes(c.key)} onChange={(ev) => set('codecs', ev.target.checked ? CODECS.map((x) => x.key).filter((k) => k === c.key || codecs.includes(k)) : codecs.filter((k) => k !== c.key))} />
              {c.label}
            </label>
          ))}
        </div>
        {e.codecs && <p role="alert" className="mt-1 text-xs text-red-600">{e.codecs}</p>}
      </fieldset>
      <SrtpSelect id={`${idp}-srtp`} value={str(v.srtp)} error={e.srtp} onChange={(x) => set('srtp', x)} />
      <fieldset className="mb-3">
        <legend className="label">Recording</legend>
        <Switch id={`${idp}-record_inbound`} label="Record inbound calls" checked={v.record_inbound === true} error={e.record_inbound}
          help="Calls that arrive through this trunk are recorded from answer to end." onChange={(x) => set('record_inbound', x)} />
        <Switch id={`${idp}-record_outbound`} label="Record outbound calls" checked={v.record_outbound === true} error={e.record_outbound}
          help="Calls that leave through this trunk are recorded from answer to end." onChange={(x) => set('record_outbound', x)} />
      </fieldset>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <TextInput id={`${idp}-caller_id_name`} label="Caller ID name" value={str(v.caller_id_name)} error={e.caller_id_name} onChange={(x) => set('caller_id_name', x)} />
        <TextInput id={`${idp}-caller_id_num`} label="Caller ID number" value={str(v.caller_id_num)} error={e.caller_id_num} onChange={(x) => set('caller_id_num', x)} />
        <NumberInput id={`${idp}-priority`} label="Priority" help="Lower is preferred" min={0} value={num(v.priority)} error={e.priority} onChange={(x) => set('priority', x)} />
        <NumberInput id={`${idp}-max_channels`} label="Max channels" help="0 = unlimited" min={0} value={num(v.max_channels)} error={e.max_channels} onChange={(x) => set('max_channels', x)} />
        <NumberInput id={`${idp}-prefix_strip`} label="Strip digits" min={0} value={num(v.prefix_strip)} error={e.prefix_strip} onChange={(x) => set('prefix_strip', x)} />
        <TextInput id={`${idp}-prefix_add`} label="Add prefix" value={str(v.prefix_add)} error={e.prefix_add} onChange={(x) => set('prefix_add', x)} />
      </div>
      <TrunkNumberingFields values={v} set={set} errors={e} idp={idp} />
    </>
  );
}

function NumberFields({ values: v, set, errors: e, idp }: FP) {
  const trunks = useEntities('trunk');
  const flows = useFlows();
  const flow = (flows.data ?? []).find((f) => f.id === v.flow_id);
  const entryNodes = (flow?.flow_data?.nodes ?? []).filter((n) => n.type === 'inbound_number');
  return (
    <>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-number`} label="Number" required placeholder="+61299990000" help="E.164, with +" value={str(v.number)} error={e.number} onChange={(x) => set('number', x)} />
        <TextInput id={`${idp}-name`} label="Name" placeholder="Main office" value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
      </div>
      <Select id={`${idp}-trunk_id`} label="Trunk" value={str(v.trunk_id)} error={e.trunk_id} onChange={(x) => set('trunk_id', x ? Number(x) : null)}
        options={[{ value: '', label: '— any —' }, ...(trunks.data ?? []).map((t) => ({ value: t.id, label: t.name }))]} />
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <Select id={`${idp}-flow_id`} label="Flow" value={str(v.flow_id)} error={e.flow_id} help="Set for you when the number is placed on a flow's canvas."
          onChange={(x) => { set('flow_id', x ? Number(x) : null); set('flow_entry_node', null); }}
          options={[{ value: '', label: '— none —' }, ...(flows.data ?? []).map((f) => ({ value: f.id, label: f.name }))]} />
        <Select id={`${idp}-flow_entry_node`} label="Entry node" value={str(v.flow_entry_node)} error={e.flow_entry_node} onChange={(x) => set('flow_entry_node', x || null)}
          options={[{ value: '', label: '—' }, ...entryNodes.map((n) => ({ value: n.id, label: `${n.data.label ?? n.id} (${n.id})` }))]} />
      </div>
      <Checkbox id={`${idp}-enabled`} label="Enabled" checked={v.enabled === true} onChange={(x) => set('enabled', x)} />
    </>
  );
}

function VoicemailFields({ values: v, set, errors: e, idp, editing }: FP) {
  const exts = useEntities('extension');
  return (
    <>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
        <TextInput id={`${idp}-mailbox_number`} label="Mailbox number" help="Optional dial-in number" value={str(v.mailbox_number)} error={e.mailbox_number} onChange={(x) => set('mailbox_number', x)} />
        <TextInput id={`${idp}-pin`} label="PIN" type="password" autoComplete="new-password" help={editing ? (v.pin_set ? 'A PIN is stored; leave empty to keep it.' : 'No PIN set.') : cap(lengthHint('voicemail_box', 'pin') ?? '')} value={str(v.pin)} error={e.pin} onChange={(x) => set('pin', x)} />
        <Select id={`${idp}-greeting_type`} label="Greeting" value={str(v.greeting_type)} error={e.greeting_type} onChange={(x) => set('greeting_type', x)}
          options={[{ value: 'default', label: 'Default' }, { value: 'custom', label: 'Custom recording' }, { value: 'name_only', label: 'Name only' }]} />
      </div>
      {v.greeting_type === 'custom' && <GreetingUpload id={`${idp}-greeting`} boxId={editing ? (v.id as Id) : undefined} hasGreeting={!!v.greeting_file} />}
      <Select id={`${idp}-notify_extension_id`} label="Message-waiting lamp on" help="Lights the MWI lamp of this extension's phones" value={str(v.notify_extension_id)} error={e.notify_extension_id}
        onChange={(x) => set('notify_extension_id', x ? Number(x) : null)}
        options={[{ value: '', label: '— none —' }, ...(exts.data ?? []).map((x) => ({ value: x.id, label: `${x.extension} ${x.name}` }))]} />
      <Checkbox id={`${idp}-email_notify`} label="Email new messages" checked={v.email_notify === true} error={e.email_notify} onChange={(x) => set('email_notify', x)} />
      {v.email_notify === true && (
        <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
          <TextInput id={`${idp}-email_address`} label="Email address" type="email" required value={str(v.email_address)} error={e.email_address} onChange={(x) => set('email_address', x)} />
          <Checkbox id={`${idp}-email_attach_audio`} label="Attach the recording" checked={v.email_attach_audio === true} onChange={(x) => set('email_attach_audio', x)} />
        </div>
      )}
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <NumberInput id={`${idp}-max_message_duration`} label="Max length (s)" {...range('voicemail_box', 'max_message_duration')} value={num(v.max_message_duration)} error={e.max_message_duration} onChange={(x) => set('max_message_duration', x)} />
        <NumberInput id={`${idp}-max_messages`} label="Max messages" {...range('voicemail_box', 'max_messages')} value={num(v.max_messages)} error={e.max_messages} onChange={(x) => set('max_messages', x)} />
        <NumberInput id={`${idp}-retention_days`} label="Keep (days)" help="0 = forever" min={0} value={num(v.retention_days)} error={e.retention_days} onChange={(x) => set('retention_days', x)} />
      </div>
    </>
  );
}

function RingGroupFields({ values: v, set, errors: e, idp }: FP) {
  return (
    <>
      <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <Select id={`${idp}-strategy`} label="Strategy" value={str(v.strategy)} error={e.strategy} onChange={(x) => set('strategy', x)}
          options={[
            { value: 'ring_all', label: 'Ring all' },
            { value: 'round_robin', label: 'Round robin' },
            { value: 'random', label: 'Random' },
            { value: 'longest_idle', label: 'Longest idle' },
            { value: 'sequential', label: 'Sequential' },
          ]} />
        <NumberInput id={`${idp}-ring_timeout`} label="Ring timeout (s)" min={5} max={600} value={num(v.ring_timeout)} error={e.ring_timeout} onChange={(x) => set('ring_timeout', x)} />
        <Select id={`${idp}-caller_id_mode`} label="Caller ID" value={str(v.caller_id_mode)} error={e.caller_id_mode} onChange={(x) => set('caller_id_mode', x)}
          options={[{ value: 'pass', label: 'Pass through' }, { value: 'fixed', label: 'Fixed' }, { value: 'prepend', label: 'Prepend text' }]} />
      </div>
      {v.caller_id_mode !== 'pass' && (
        <TextInput id={`${idp}-caller_id_value`} label={v.caller_id_mode === 'fixed' ? 'Caller ID shown' : 'Text put before the caller’s name'} value={str(v.caller_id_value)} error={e.caller_id_value} onChange={(x) => set('caller_id_value', x)} />
      )}
      <MembersEditor id={`${idp}-members`} value={(v.members as Id[]) ?? []} onChange={(x) => set('members', x)} error={e.members}
        renderNewExtension={(done, cancel) => <EntityForm type="extension" onSaved={done} onCancel={cancel} idPrefix={`${idp}-newext`} />} />
    </>
  );
}

function IvrFields({ values: v, set, errors: e, idp }: FP) {
  return (
    <>
      <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
      <PromptPicker id={`${idp}-greeting_file`} label="Greeting prompt" value={str(v.greeting_file)} error={e.greeting_file} onChange={(x) => set('greeting_file', x)} />
      <TextInput id={`${idp}-greeting_tts`} label="Greeting text" help="Spoken when no prompt is set" value={str(v.greeting_tts)} error={e.greeting_tts} onChange={(x) => set('greeting_tts', x)} />
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <NumberInput id={`${idp}-timeout`} label="Wait for input (s)" min={1} max={120} value={num(v.timeout)} error={e.timeout} onChange={(x) => set('timeout', x)} />
        <NumberInput id={`${idp}-max_retries`} label="Retries" min={0} max={10} value={num(v.max_retries)} error={e.max_retries} onChange={(x) => set('max_retries', x)} />
        <NumberInput id={`${idp}-digit_timeout`} label="Between digits (s)" min={1} max={30} value={num(v.digit_timeout)} error={e.digit_timeout} onChange={(x) => set('digit_timeout', x)} />
      </div>
      <DigitMapEditor id={`${idp}-options`} value={(v.options as Record<string, string>) ?? {}} onChange={(x) => set('options', x)} error={e.options} />
    </>
  );
}

function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  try {
    return intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : ['UTC'];
  } catch {
    return ['UTC'];
  }
}

function TimeSwitchFields({ values: v, set, errors: e, idp }: FP) {
  const zones = useMemo(timeZones, []);
  const rules = (v.rules as never[]) ?? [];
  return (
    <>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
        <div className="mb-3">
          <label className="label" htmlFor={`${idp}-timezone`}>
            Time zone
          </label>
          <input id={`${idp}-timezone`} list={`${idp}-zones`} className={`input ${e.timezone ? 'input-error' : ''}`} value={str(v.timezone)}
            aria-invalid={e.timezone ? true : undefined} aria-describedby={e.timezone ? `${idp}-timezone-error` : undefined}
            onChange={(ev) => set('timezone', ev.target.value)} />
          <datalist id={`${idp}-zones`}>
            {zones.map((z) => (
              <option key={z} value={z} />
            ))}
          </datalist>
          {e.timezone && <p id={`${idp}-timezone-error`} role="alert" className="mt-1 text-xs text-red-600">{e.timezone}</p>}
        </div>
      </div>
      <TimeRulesEditor id={`${idp}-rules`} rules={rules} onChange={(x) => set('rules', x)} errors={e} />
      <WeeklyGrid rules={rules} />
      <OverridesEditor id={`${idp}-overrides`} overrides={(v.overrides as never[]) ?? []} rules={rules} onChange={(x) => set('overrides', x)} errors={e} />
    </>
  );
}

function ConferenceFields({ values: v, set, errors: e, idp, editing }: FP) {
  return (
    <>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-name`} label="Name" required value={str(v.name)} error={e.name} onChange={(x) => set('name', x)} />
        <TextInput id={`${idp}-extension`} label="Dial-in extension" value={str(v.extension)} error={e.extension} onChange={(x) => set('extension', x)} />
        <TextInput id={`${idp}-pin`} label="PIN" type="password" autoComplete="new-password" help={editing ? (v.pin_set ? 'A PIN is stored; leave empty to keep it.' : 'No PIN: anyone may join.') : `Optional, ${lengthHint('conference_bridge', 'pin')}`} value={str(v.pin)} error={e.pin} onChange={(x) => set('pin', x)} />
        <NumberInput id={`${idp}-max_members`} label="Max participants" {...range('conference_bridge', 'max_members')} value={num(v.max_members)} error={e.max_members} onChange={(x) => set('max_members', x)} />
      </div>
      <Checkbox id={`${idp}-record`} label="Record the conference" checked={v.record === true} onChange={(x) => set('record', x)} />
      <Checkbox id={`${idp}-mute_on_join`} label="Mute participants when they join" checked={v.mute_on_join === true} onChange={(x) => set('mute_on_join', x)} />
      <Checkbox id={`${idp}-announce_joins`} label="Announce joins and leaves" checked={v.announce_joins === true} onChange={(x) => set('announce_joins', x)} />
    </>
  );
}

function GreetingUpload({ id, boxId, hasGreeting }: { id: string; boxId?: Id; hasGreeting: boolean }) {
  const [state, setState] = useState<{ busy: boolean; error?: string; done?: boolean }>({ busy: false });
  if (!boxId) return <p className="mb-3 text-xs text-slate-500">Upload the greeting once the box is created.</p>;
  return (
    <div className="mb-3">
      <label htmlFor={id} className="label">
        Greeting recording {hasGreeting && !state.done ? '(one is stored; a new file replaces it)' : ''}
      </label>
      <input
        id={id}
        type="file"
        accept=".wav,audio/wav,audio/x-wav"
        className="text-sm"
        aria-describedby={state.error ? `${id}-error` : undefined}
        disabled={state.busy}
        onChange={async (e) => {
          const file = e.target.files?.[0];
          if (!file) return;
          setState({ busy: true });
          try {
            await api.voicemailBoxes.uploadGreeting(boxId, file);
            setState({ busy: false, done: true });
          } catch (err) {
            setState({ busy: false, error: errorMessage(err) });
          }
        }}
      />
      {state.busy && <p className="mt-1 text-xs text-slate-500">Uploading…</p>}
      {state.done && <p role="status" className="mt-1 text-xs text-emerald-700">Greeting stored.</p>}
      {state.error && <p id={`${id}-error`} role="alert" className="mt-1 text-xs text-red-600">{state.error}</p>}
    </div>
  );
}
