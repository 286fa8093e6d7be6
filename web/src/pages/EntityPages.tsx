// The CRUD pages of the entities: a searchable table, the shared entity form in a drawer,
// delete with the impact list, and what each kind needs besides (registrations of an
// extension, trunk status and test, voicemail messages).
import { useMemo, useState, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { ENTITY_KINDS, entityStatus, type AnyEntity, type EntityType } from '../api/entities';
import { useLive } from '../api/live';
import { useDeleteEntity, useEntities } from '../api/queries';
import type { Extension, Id, InboundNumber, IvrMenu, RingGroup, TimeSwitch, Trunk, VoicemailBox, Conference } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { Dialog, Empty, ErrorBanner, formatDate, PageHeader, Spinner, StatusDot, TableHead, DeleteButton } from '../components/common/ui';
import { EntityForm } from '../components/entities/EntityForm';
import { PushTargetForm } from '../components/entities/push';
import { MwiSubscriptions, VoicemailMessages } from '../components/entities/voicemail';
import { TrunkPanel, TrunkStatusBadge, useTrunkStatus } from '../components/trunks/TrunkStatus';

interface Column {
  header: string;
  cell: (e: AnyEntity) => ReactNode;
}

function useColumns(type: EntityType): Column[] {
  const regs = useLive((s) => s.registrations);
  const trunks = useLive((s) => s.trunks);
  const synced = useLive((s) => s.synced);
  const exts = useEntities('extension', type === 'ring_group');
  const status = (e: AnyEntity) => entityStatus(type, e, { registrations: synced ? (regs[String(e.id)] ?? 0) : undefined, trunk: trunks[String(e.id)]?.status });
  switch (type) {
    case 'extension':
      return [
        { header: 'Ext.', cell: (e) => (e as Extension).extension },
        { header: 'Name', cell: (e) => <ExtensionName ext={e as Extension} /> },
        { header: 'SIP user', cell: (e) => (e as Extension).sip_username },
        { header: 'Status', cell: (e) => <StatusDot status={status(e)} /> },
        { header: 'DND', cell: (e) => ((e as Extension).dnd ? 'on' : '') },
      ];
    case 'trunk':
      return [
        { header: 'Name', cell: (e) => (e as Trunk).name },
        { header: 'Type', cell: (e) => ((e as Trunk).type === 'register' ? 'registration' : 'IP') },
        { header: 'Host', cell: (e) => ENTITY_KINDS.trunk.subtitle!(e as Trunk) },
        { header: 'Priority', cell: (e) => (e as Trunk).priority },
        { header: 'Status', cell: (e) => <TrunkStatusCell trunk={e as Trunk} /> },
      ];
    case 'inbound_number':
      return [
        { header: 'Number', cell: (e) => (e as InboundNumber).number },
        { header: 'Name', cell: (e) => (e as InboundNumber).name ?? '' },
        { header: 'Routes to', cell: (e) => ((e as InboundNumber).flow_id ? <Link className="text-indigo-700 underline" to={`/flows/${(e as InboundNumber).flow_id}`}>flow #{(e as InboundNumber).flow_id}</Link> : <span className="text-amber-700">no flow</span>) },
        { header: 'Status', cell: (e) => <StatusDot status={status(e) ?? { tone: 'ok', text: 'enabled' }} /> },
      ];
    case 'voicemail_box':
      return [
        { header: 'Name', cell: (e) => (e as VoicemailBox).name },
        { header: 'Mailbox', cell: (e) => (e as VoicemailBox).mailbox_number ?? '' },
        { header: 'Email', cell: (e) => ((e as VoicemailBox).email_notify ? (e as VoicemailBox).email_address : '') },
        { header: 'Messages', cell: (e) => ((e as VoicemailBox).message_count === undefined ? '' : `${(e as VoicemailBox).unread_count ?? 0} new / ${(e as VoicemailBox).message_count}`) },
      ];
    case 'ring_group':
      return [
        { header: 'Name', cell: (e) => (e as RingGroup).name },
        { header: 'Strategy', cell: (e) => (e as RingGroup).strategy.replace('_', ' ') },
        {
          header: 'Members',
          cell: (e) =>
            (e as RingGroup).members
              .map((m) => exts.data?.find((x) => x.id === m)?.extension ?? `#${m}`)
              .join(', '),
        },
        { header: 'Timeout', cell: (e) => `${(e as RingGroup).ring_timeout}s` },
      ];
    case 'ivr_menu':
      return [
        { header: 'Name', cell: (e) => (e as IvrMenu).name },
        { header: 'Digits', cell: (e) => Object.entries((e as IvrMenu).options ?? {}).map(([d, l]) => `${d}${l ? ` ${l}` : ''}`).join(' · ') },
        { header: 'Greeting', cell: (e) => ((e as IvrMenu).greeting_file ? 'prompt' : (e as IvrMenu).greeting_tts ? 'text' : '—') },
      ];
    case 'time_switch':
      return [
        { header: 'Name', cell: (e) => (e as TimeSwitch).name },
        { header: 'Time zone', cell: (e) => (e as TimeSwitch).timezone },
        { header: 'Rules', cell: (e) => (e as TimeSwitch).rules.map((r) => r.label).join(', ') },
        { header: 'Overrides', cell: (e) => (e as TimeSwitch).overrides?.length ?? 0 },
      ];
    case 'conference_bridge':
      return [
        { header: 'Name', cell: (e) => (e as Conference).name },
        { header: 'Extension', cell: (e) => (e as Conference).extension ?? '' },
        { header: 'Max', cell: (e) => (e as Conference).max_members },
        { header: 'In call', cell: (e) => (e as Conference).participant_count ?? '' },
      ];
    default:
      return [];
  }
}

export default function EntityPage({ type: t }: { type: string }) {
  const type = t as EntityType;
  const kind = ENTITY_KINDS[type];
  const list = useEntities(type);
  const columns = useColumns(type);
  const del = useDeleteEntity(type);
  const [q, setQ] = useState('');
  const [editing, setEditing] = useState<AnyEntity | 'new' | null>(null);
  const [deleting, setDeleting] = useState<AnyEntity | null>(null);
  const [details, setDetails] = useState<AnyEntity | null>(null);
  // the trunk test runs as its dialog opens
  const [testing, setTesting] = useState(false);
  const title = (e: AnyEntity) => (kind.title as (x: AnyEntity) => string)(e);

  const rows = useMemo(() => {
    const needle = q.trim().toLowerCase();
    const all = (list.data ?? []) as AnyEntity[];
    return needle ? all.filter((e) => JSON.stringify(e).toLowerCase().includes(needle)) : all;
  }, [list.data, q]);

  const hasDetails = type === 'extension' || type === 'trunk' || type === 'voicemail_box';

  return (
    <div>
      <PageHeader title={kind.plural}>
        <label htmlFor="entity-search" className="sr-only">
          Search {kind.plural.toLowerCase()}
        </label>
        <input id="entity-search" className="input w-48" placeholder="Search…" value={q} onChange={(e) => setQ(e.target.value)} />
        <button type="button" className="btn btn-primary" onClick={() => setEditing('new')}>
          {kind.newLabel}
        </button>
      </PageHeader>
      <ErrorBanner error={list.error ? errorMessage(list.error) : null} />
      <div className="card overflow-x-auto">
        {list.isLoading ? (
          <Spinner />
        ) : rows.length === 0 ? (
          <Empty>{q ? 'Nothing matches.' : `No ${kind.plural.toLowerCase()} yet.`}</Empty>
        ) : (
          <table className="table">
            <TableHead columns={columns.map((c) => c.header)} />
            <tbody>
              {rows.map((e) => (
                <tr key={e.id} className="hover:bg-slate-50">
                  {columns.map((c) => (
                    <td key={c.header}>{c.cell(e)}</td>
                  ))}
                  <td className="whitespace-nowrap text-right">
                    {hasDetails && (
                      <button type="button" className="btn btn-ghost btn-sm" onClick={() => { setTesting(false); setDetails(e); }} aria-label={type === 'trunk' ? `Status of ${title(e)}` : undefined}>
                        {type === 'extension' ? 'Devices' : type === 'trunk' ? 'Status' : 'Messages'}
                      </button>
                    )}
                    {type === 'trunk' && (
                      <button type="button" className="btn btn-ghost btn-sm" onClick={() => { setTesting(true); setDetails(e); }} aria-label={`Test ${title(e)}`}>
                        Test
                      </button>
                    )}
                    <button type="button" className="btn btn-ghost btn-sm" onClick={() => setEditing(e)} aria-label={`Edit ${title(e)}`}>
                      Edit
                    </button>
                    <DeleteButton what={title(e)} onClick={() => setDeleting(e)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {editing && (
        <Dialog title={editing === 'new' ? kind.newLabel.replace('…', '') : `Edit ${title(editing)}`} onClose={() => setEditing(null)} side>
          <EntityForm type={type} entity={editing === 'new' ? null : (editing as never)} onSaved={() => setEditing(null)} onCancel={() => setEditing(null)} />
          {type === 'extension' && editing !== 'new' && <PushTargetForm extensionId={editing.id} />}
        </Dialog>
      )}
      {deleting && (
        <ConfirmDelete
          what={`${kind.singular} ${title(deleting)}`}
          usage={() => kind.resource.references(deleting.id)}
          onConfirm={() => del.mutateAsync(deleting.id)}
          onClose={() => setDeleting(null)}
        />
      )}
      {details && (
        <Dialog title={title(details)} onClose={() => setDetails(null)} wide>
          {type === 'extension' && <Registrations id={details.id} srtp={(details as { srtp?: string }).srtp} />}
          {type === 'extension' && <MwiSubscriptions id={details.id} />}
          {type === 'trunk' && <TrunkPanel trunk={((list.data ?? []) as AnyEntity[]).find((t) => t.id === details.id) as Trunk ?? (details as Trunk)} autoTest={testing} />}
          {type === 'voicemail_box' && <VoicemailMessages id={details.id} />}
        </Dialog>
      )}
    </div>
  );
}

const SRTP_POLICY: Record<string, string> = {
  off: 'plain RTP (SRTP off)',
  optional: 'SRTP when the device takes the keys offered (optional)',
  required: 'always SRTP (required: plain calls are refused)',
};

/** A registration's media encryption (ExtensionRegistration.media_encryption) in words. */
const MEDIA_ENCRYPTION: Record<string, string> = {
  'dtls-srtp': 'DTLS-SRTP (WebRTC)',
  srtp: 'SRTP',
  'srtp-optional': 'SRTP if the phone takes it',
  none: 'plain RTP',
};

function Registrations({ id, srtp }: { id: Id; srtp?: string }) {
  const seq = useLive((s) => s.registrations[String(id)]);
  const q = useQuery({ queryKey: ['registrations', id, seq], queryFn: () => api.extensions.registrations(id) });
  if (q.isLoading) return <Spinner />;
  if (q.error) return <ErrorBanner error={errorMessage(q.error)} />;
  if (!q.data?.length) return <Empty>No device is registered.</Empty>;
  return (
    <>
    {srtp && <p className="mb-2 text-sm text-slate-600">Media of these devices&apos; calls: {SRTP_POLICY[srtp] ?? srtp}. Each call shows whether its legs were encrypted.</p>}
    <table className="table">
      <TableHead columns={['Contact', 'Transport', 'Media', 'Device', 'From', 'Expires']} actions={false} />
      <tbody>
        {q.data.map((r) => (
          <tr key={r.id}>
            <td className="break-all font-mono text-xs">{r.contact_uri}</td>
            <td>
              {r.transport?.toUpperCase() ?? ''}
              {(r.transport === 'tls' || r.transport === 'wss') && <span className="ml-1 text-xs text-emerald-700">encrypted</span>}
            </td>
            <td>{MEDIA_ENCRYPTION[r.media_encryption] ?? r.media_encryption}</td>
            <td>{r.user_agent ?? ''}</td>
            <td>
              {r.source_ip}
              {r.source_port ? `:${r.source_port}` : ''}
            </td>
            <td>{formatDate(r.expires)}</td>
          </tr>
        ))}
      </tbody>
    </table>
    </>
  );
}

/** The name, with a small "follow-me" badge when it is on (its numbers and mode on hover). */
function ExtensionName({ ext }: { ext: Extension }) {
  const n = ext.follow_me_numbers?.length ?? 0;
  return (
    <>
      {ext.name}
      {ext.follow_me_enabled && (
        <span
          className="ml-2 rounded-full bg-indigo-50 px-1.5 py-0.5 align-middle text-[11px] font-medium text-indigo-700"
          title={`Follow-me on: ${n} ${n === 1 ? 'number' : 'numbers'}, ${ext.follow_me_mode}${ext.follow_me_confirm ? ', press 1 to accept' : ''}`}
        >
          follow-me
        </span>
      )}
    </>
  );
}

function TrunkStatusCell({ trunk }: { trunk: Trunk }) {
  return <TrunkStatusBadge trunk={trunk} status={useTrunkStatus(trunk)} />;
}
