// The editor's right-hand panels besides the inspector: validation problems, version history
// (view, diff, roll back) and the test call (the simulator, with its path animated).
import { useEffect, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import { keys, useEntities } from '../../api/queries';
import type { DiffSide, FlowDiff, Id, Problem, SimHttpResponse, SimulateRequest, SimulateResult } from '../../api/types';
import { entityFieldLabel, entityKindLabel, formatValue, isEmptyDiff, meaningfulFields, nodeFieldLabel, nodeFieldValue } from './diff';
import { useEditor } from '../../store/editor';
import { ConfirmDelete } from '../common/ConfirmDelete';
import { useNodeNamer, useOutputLabel } from './FlowNode';
import { actorWords, Dialog, ErrorBanner, formatDate, Spinner } from '../common/ui';

export function ProblemsPanel({ onFocus }: { onFocus: (p: Problem) => void }) {
  const problems = useEditor((s) => s.problems);
  const edges = useEditor((s) => s.edges);
  const nameOf = useNodeNamer();
  const edgeName = (id: string) => {
    const e = edges.find((x) => x.id === id);
    return e ? `connection ${nameOf(e.source)} → ${nameOf(e.target)}` : 'a connection';
  };
  if (problems.length === 0) return <p className="p-3 text-sm text-emerald-700">No problems found.</p>;
  const errors = problems.filter((p) => p.severity === 'error').length;
  const label = (p: Problem) => (p.node_id ? nameOf(p.node_id) : p.edge_id ? edgeName(p.edge_id) : 'Flow');
  return (
    <div className="p-3">
      <p className="mb-2 text-sm text-slate-600">
        {errors} error{errors === 1 ? '' : 's'}, {problems.length - errors} warning{problems.length - errors === 1 ? '' : 's'}
      </p>
      <ul className="space-y-1" aria-label="Problems">
        {problems.map((p, i) => (
          <li key={i}>
            <button
              type="button"
              className={`w-full rounded-md border px-2 py-1.5 text-left text-sm hover:bg-slate-50 ${p.severity === 'error' ? 'border-red-200' : 'border-amber-200'}`}
              onClick={() => onFocus(p)}
            >
              <span className={p.severity === 'error' ? 'text-red-600' : 'text-amber-600'} aria-label={p.severity}>
                {p.severity === 'error' ? '✖' : '⚠'}
              </span>{' '}
              <strong className="font-medium">{label(p)}</strong>: {p.message}
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

export function VersionsPanel({ flowId, onView, onShowDiff }: { flowId: Id; onView: (v: number | null) => void; onShowDiff?: (d: FlowDiff, b: DiffSide) => void }) {
  const qc = useQueryClient();
  const versions = useQuery({ queryKey: keys.versions(flowId), queryFn: () => api.flows.versions(flowId) });
  const flow = useQuery({ queryKey: keys.flow(flowId), queryFn: () => api.flows.get(flowId) });
  const isLive = (v: { version: number; live?: boolean }) => v.live ?? (!!flow.data?.published && flow.data.version === v.version);
  const viewing = useEditor((s) => s.readOnly);
  const [diff, setDiff] = useState<{ a: DiffSide; b: DiffSide } | null>(null);
  const [rollback, setRollback] = useState<number | null>(null);

  if (versions.isLoading) return <Spinner />;
  if (versions.error) return <ErrorBanner error={errorMessage(versions.error)} />;
  const list = [...(versions.data ?? [])].sort((x, y) => y.version - x.version);
  return (
    <div className="p-3">
      {viewing && (
        <div className="mb-3 rounded-md bg-amber-50 p-2 text-sm text-amber-900">
          Viewing {viewing}.{' '}
          <button type="button" className="btn btn-sm ml-1" onClick={() => onView(null)}>
            Back to draft
          </button>
        </div>
      )}
      {list.length === 0 && <p className="text-sm text-slate-500">Not published yet.</p>}
      <ol className="space-y-2" aria-label="Published versions">
        {list.map((v, i) => (
          <li key={v.version} className="rounded-md border border-slate-200 p-2 text-sm">
            <div className="flex items-center justify-between">
              <strong>
                Version {v.version}
                {isLive(v) && <span className="ml-2 rounded bg-emerald-100 px-1.5 text-xs font-medium text-emerald-800">live</span>}
              </strong>
            </div>
            <div className="text-xs text-slate-500">
              {formatDate(v.published_at)}
              {v.published_by ? ` by ${actorWords(v.published_by)}` : ''}
            </div>
            <div className="mt-1 flex flex-wrap gap-1">
              <button type="button" className="btn btn-sm" onClick={() => onView(v.version)}>
                View
              </button>
              <button type="button" className="btn btn-sm" onClick={() => setDiff({ a: v.version, b: 'draft' })}>
                Diff with draft
              </button>
              {list[i + 1] && (
                <button type="button" className="btn btn-sm" onClick={() => setDiff({ a: list[i + 1].version, b: v.version })}>
                  Changes in v{v.version}
                </button>
              )}
              {!isLive(v) && (
                <button type="button" className="btn btn-sm" onClick={() => setRollback(v.version)}>
                  Roll back to this
                </button>
              )}
            </div>
          </li>
        ))}
      </ol>
      {diff && <DiffDialog flowId={flowId} a={diff.a} b={diff.b} onClose={() => setDiff(null)} onShow={onShowDiff} />}
      {rollback !== null && (
        <ConfirmDelete
          verb="Roll back"
          what={`to version ${rollback}`}
          message={
            <>
              Calls will follow version {rollback} from now on. Your draft stays as it is, and this can be undone: roll back again to the version that is live now.
            </>
          }
          onConfirm={() => api.flows.rollback(flowId, rollback)}
          onClose={() => setRollback(null)}
          onDone={() => {
            void qc.invalidateQueries({ queryKey: keys.versions(flowId) });
            void qc.invalidateQueries({ queryKey: keys.flow(flowId) });
          }}
        />
      )}
    </div>
  );
}

const sideName = (x: DiffSide) => (x === 'draft' ? 'draft' : x === 'live' ? 'live' : `v${x}`);

export function DiffDialog({ flowId, a, b, onClose, onShow }: { flowId: Id; a: DiffSide; b: DiffSide; onClose: () => void; onShow?: (d: FlowDiff, b: DiffSide) => void }) {
  const q = useQuery({ queryKey: ['diff', flowId, a, b], queryFn: () => api.flows.diff(flowId, a, b) });
  const exts = useEntities('extension');
  const extName = (id: unknown) => {
    const x = (exts.data ?? []).find((e) => e.id === id);
    return x ? `${x.extension} ${x.name}` : undefined;
  };
  // ring-group members and a voicemail box's notify extension are extension ids
  const nameOf = (field: string, v: unknown) => (/^members(\.|\[\]|$)/.test(field) || field === 'notify_extension_id' ? (Array.isArray(v) ? v.map((x) => extName(x) ?? String(x)).join(', ') : extName(v)) : undefined);
  return (
    <Dialog title={`Changes from ${sideName(a)} to ${sideName(b)}`} onClose={onClose} wide>
      {q.isLoading && <Spinner />}
      <ErrorBanner error={q.error ? errorMessage(q.error) : null} />
      {q.data && <DiffView diff={q.data} nameOf={nameOf} />}
      {q.data && onShow && !isEmptyDiff(q.data) && (
        <div className="mt-3 flex justify-end">
          <button
            type="button"
            className="btn btn-sm"
            onClick={() => {
              onShow(q.data, b);
              onClose();
            }}
          >
            Show on canvas
          </button>
        </div>
      )}
    </Dialog>
  );
}

type Named = { id: string; type?: string; data?: { label?: string } };

export function DiffView({ diff, nameOf }: { diff: FlowDiff; nameOf?: (field: string, v: unknown) => string | undefined }) {
  if (isEmptyDiff(diff)) return <p className="text-sm text-slate-600">No differences.</p>;
  const n = diff.nodes;
  const e = diff.edges;
  const labels = diff.labels ?? {};
  const name = (id: string, node?: Named) => labels[id] || node?.data?.label || node?.type || 'a removed node';
  const nodeById = new Map<string, Named>([...n.added, ...n.removed, ...n.changed.map((c) => c.after)].map((x) => [x.id, x as Named]));
  const nodeName = (x: Named) => name(x.id, x);
  const edgeText = (x: { source: string; target: string; sourceHandle?: string | null; label?: unknown }) =>
    `${name(x.source, nodeById.get(x.source))} —${typeof x.label === 'string' && x.label ? x.label : (x.sourceHandle ?? '')}→ ${name(x.target, nodeById.get(x.target))}`;
  const changedNodes = n.changed.filter((c) => meaningfulFields(c.fields).length > 0);
  return (
    <div className="space-y-3 text-sm" data-testid="diff-view">
      <DiffSection title="Nodes added" tone="add" items={n.added.map((x) => ({ text: nodeName(x as Named) }))} />
      <DiffSection title="Nodes removed" tone="del" items={n.removed.map((x) => ({ text: nodeName(x as Named) }))} />
      <DiffSection
        title="Nodes changed"
        tone="chg"
        items={changedNodes.map((c) => ({
          text: nodeName(c.after as Named),
          fields: meaningfulFields(c.fields).map((f) => ({ label: nodeFieldLabel(f), before: formatValue(nodeFieldValue(c.before, f)), after: formatValue(nodeFieldValue(c.after, f)) })),
        }))}
      />
      <DiffSection title="Edges added" tone="add" items={e.added.map((x) => ({ text: edgeText(x) }))} />
      <DiffSection title="Edges removed" tone="del" items={e.removed.map((x) => ({ text: edgeText(x) }))} />
      <DiffSection title="Edges changed" tone="chg" items={e.changed.map((c) => ({ text: `${edgeText(c.before)} ⇒ ${edgeText(c.after)}` }))} />
      <DiffSection
        title="Settings of linked entities"
        tone="chg"
        items={(diff.entities ?? []).map((x) => ({
          text: `${entityKindLabel(x.entity_type)} “${x.name}”${x.change === 'added' ? ' (now used)' : x.change === 'removed' ? ' (no longer used)' : ''}`,
          tone: x.change === 'added' ? 'add' : x.change === 'removed' ? 'del' : 'chg',
          fields: x.fields.map((f) => ({ label: entityFieldLabel(f.field), before: formatValue(f.before, nameOf, f.field), after: formatValue(f.after, nameOf, f.field) })),
        }))}
      />
      {diff.settings_changed && <p className="text-amber-700">The flow's settings (its fallback) changed.</p>}
    </div>
  );
}

type Tone = 'add' | 'del' | 'chg';
interface DiffItem {
  text: string;
  tone?: Tone;
  fields?: { label: string; before: string; after: string }[];
}

function DiffSection({ title, items, tone }: { title: string; items: DiffItem[]; tone: Tone }) {
  if (items.length === 0) return null;
  const color = { add: 'text-emerald-700', del: 'text-red-700', chg: 'text-amber-700' };
  const sign = { add: '+', del: '−', chg: '~' };
  return (
    <section>
      <h3 className="mb-1 font-medium">{title}</h3>
      <ul className="space-y-0.5 text-xs" aria-label={title}>
        {items.map((x, i) => (
          <li key={i} className={color[x.tone ?? tone]}>
            {sign[x.tone ?? tone]} {x.text}
            {x.fields && x.fields.length > 0 && (
              <ul className="ml-4 text-slate-700">
                {x.fields.map((f) => (
                  <li key={f.label} data-testid="diff-field">
                    {f.label}: <del className="text-red-700">{f.before}</del> → <ins className="text-emerald-700 no-underline">{f.after}</ins>
                  </li>
                ))}
              </ul>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

const ANSWER_CHOICES = [
  { value: 'answer', label: 'answers' },
  { value: 'no_answer', label: 'does not answer' },
  { value: 'busy', label: 'is busy' },
  { value: 'unavailable', label: 'is offline' },
] as const;

/**
 * The test-call form: a simulate request (whose fields are all optional to the server) with
 * the fields the form edits always present.
 */
export type SimulationForm = Omit<SimulateRequest, 'caller' | 'dialled' | 'time' | 'timezone' | 'answers' | 'http'> & {
  caller: string;
  dialled: string;
  time: string;
  timezone: string;
  answers: NonNullable<SimulateRequest['answers']>;
  http: (SimHttpResponse & { status: number; body: string })[];
};

export function defaultSimulation(): SimulationForm {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return {
    version: 'draft',
    caller: '+15555550100',
    dialled: '',
    time: `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}`,
    timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC',
    digits: [],
    answers: {},
    http: [],
  };
}

/**
 * `onBeforeShow` puts the graph the run used on the canvas (0: the draft, else that published
 * version's graph: a run of the live version is drawn over the live graph) before its path.
 */
export function TestCallPanel({ flowId, onBeforeRun, onBeforeShow }: { flowId: Id; onBeforeRun: () => Promise<void>; onBeforeShow?: (version: number) => Promise<void> }) {
  const nodes = useEditor((s) => s.nodes);
  const showPath = useEditor((s) => s.showPath);
  const path = useEditor((s) => s.path);
  const stepPath = useEditor((s) => s.stepPath);
  const clearPath = useEditor((s) => s.clearPath);
  const exts = useEntities('extension');
  const numbers = useEntities('inbound_number');
  const [req, setReq] = useState<SimulationForm>(defaultSimulation);
  const [digitText, setDigitText] = useState('');
  const [result, setResult] = useState<SimulateResult | null>(null);
  const entries = nodes.filter((n) => n.data.nodeType === 'inbound_number');

  const run = useMutation({
    mutationFn: async () => {
      await onBeforeRun();
      const digits = digitText
        .split(/[\s,]+/)
        .filter(Boolean)
        .map((d) => ({ digits: d, after_ms: 1000 }));
      const r = await api.flows.simulate(flowId, { ...req, digits });
      await onBeforeShow?.(r.flow_version);
      return r;
    },
    onSuccess: (r) => {
      setResult(r);
      showPath(r.flow_version > 0 ? `Test call (version ${r.flow_version})` : 'Test call', r.steps);
    },
  });

  // play: one step every 700 ms
  const playing = path?.stepper.playing;
  useEffect(() => {
    if (!playing) return;
    const t = setInterval(() => stepPath('tick'), 700);
    return () => clearInterval(t);
  }, [playing, stepPath]);

  const set = <K extends keyof SimulationForm>(k: K, v: SimulationForm[K]) => setReq((r) => ({ ...r, [k]: v }));
  const frame = path ? path.frames[path.stepper.index] : undefined;
  const nodeName = useNodeNamer();
  const outputLabel = useOutputLabel();

  return (
    <div className="p-3">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          run.mutate();
        }}
        aria-label="Test call"
      >
        <div className="grid grid-cols-2 gap-2">
          <div>
            <label className="label" htmlFor="sim-caller">
              Caller
            </label>
            <input id="sim-caller" className="input" value={req.caller} onChange={(e) => set('caller', e.target.value)} />
          </div>
          <div>
            <label className="label" htmlFor="sim-entry">
              Calls
            </label>
            <select
              id="sim-entry"
              className="input"
              value={req.entry_node ?? ''}
              onChange={(e) => {
                const n = entries.find((x) => x.id === e.target.value);
                const num = (numbers.data ?? []).find((x) => x.id === n?.data.entity_id);
                setReq((r) => ({ ...r, entry_node: e.target.value || undefined, dialled: num?.number ?? r.dialled }));
              }}
            >
              <option value="">first number</option>
              {entries.map((n) => (
                <option key={n.id} value={n.id}>
                  {n.data.label || n.id}
                </option>
              ))}
            </select>
          </div>
          <div className="col-span-2">
            <label className="label" htmlFor="sim-time">
              Date and time
            </label>
            <input id="sim-time" type="datetime-local" className="input" value={req.time} onChange={(e) => set('time', e.target.value)} />
          </div>
          <div className="col-span-2">
            <label className="label" htmlFor="sim-tz">
              Time zone
            </label>
            <input id="sim-tz" className="input" value={req.timezone} onChange={(e) => set('timezone', e.target.value)} />
          </div>
          <div className="col-span-2">
            <label className="label" htmlFor="sim-digits">
              Digits pressed
            </label>
            <input id="sim-digits" className="input" placeholder="e.g. 1  or  9 2 (one entry per menu)" value={digitText} onChange={(e) => setDigitText(e.target.value)} />
          </div>
          <div className="col-span-2">
            <label className="label" htmlFor="sim-version">
              Run
            </label>
            <select id="sim-version" className="input" value={String(req.version)} onChange={(e) => set('version', e.target.value as 'draft' | 'live')}>
              <option value="draft">the draft</option>
              <option value="live">the live version</option>
            </select>
          </div>
        </div>
        <fieldset className="mt-2">
          <legend className="label">Who answers</legend>
          <div className="max-h-40 space-y-1 overflow-y-auto">
            {(exts.data ?? []).map((x) => (
              <div key={x.id} className="flex items-center justify-between gap-2 text-sm">
                <label htmlFor={`sim-ans-${x.id}`}>
                  {x.extension} {x.name}
                </label>
                <select
                  id={`sim-ans-${x.id}`}
                  className="input w-40"
                  value={req.answers[String(x.id)] ?? 'answer'}
                  onChange={(e) => set('answers', { ...req.answers, [String(x.id)]: e.target.value as 'answer' })}
                >
                  {ANSWER_CHOICES.map((c) => (
                    <option key={c.value} value={c.value}>
                      {c.label}
                    </option>
                  ))}
                </select>
              </div>
            ))}
          </div>
        </fieldset>
        <fieldset className="mt-2">
          <legend className="label">Webhook responses</legend>
          {req.http.map((h, i) => (
            <div key={i} className="mb-2 grid grid-cols-[1fr_5rem_auto] gap-1">
              <label className="sr-only" htmlFor={`sim-http-url-${i}`}>
                URL
              </label>
              <input id={`sim-http-url-${i}`} className="input" placeholder="https://api.example.com/route" value={h.url} onChange={(e) => set('http', req.http.map((x, j) => (j === i ? { ...x, url: e.target.value } : x)))} />
              <label className="sr-only" htmlFor={`sim-http-status-${i}`}>
                Status
              </label>
              <input id={`sim-http-status-${i}`} className="input" type="number" value={h.status} onChange={(e) => set('http', req.http.map((x, j) => (j === i ? { ...x, status: Number(e.target.value) } : x)))} />
              <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove response ${i + 1}`} onClick={() => set('http', req.http.filter((_, j) => j !== i))}>
                ✕
              </button>
              <label className="sr-only" htmlFor={`sim-http-body-${i}`}>
                Body
              </label>
              <textarea id={`sim-http-body-${i}`} className="input col-span-3 font-mono text-xs" rows={2} placeholder='{"route":"sales"}' value={h.body} onChange={(e) => set('http', req.http.map((x, j) => (j === i ? { ...x, body: e.target.value } : x)))} />
            </div>
          ))}
          <button type="button" className="btn btn-sm" onClick={() => set('http', [...req.http, { url: '', status: 200, body: '{}' }])}>
            Add response
          </button>
        </fieldset>
        <div className="mt-3 flex gap-2">
          <button type="submit" className="btn btn-primary" disabled={run.isPending}>
            {run.isPending ? 'Running…' : 'Run test call'}
          </button>
          {path && (
            <button type="button" className="btn" onClick={() => { clearPath(); setResult(null); }}>
              Clear path
            </button>
          )}
        </div>
      </form>
      <ErrorBanner error={run.error ? errorMessage(run.error) : null} />
      {result && path && (
        <section className="mt-3" aria-label="Test call result">
          <p className="mb-2 text-sm">
            <strong>Outcome:</strong> <span data-testid="sim-outcome">{result.outcome}</span>
          </p>
          {result.error && <ErrorBanner error={result.error} />}
          <div className="mb-2 flex items-center gap-1" role="group" aria-label="Step through the path">
            <button type="button" className="btn btn-sm" onClick={() => stepPath('first')} aria-label="First step">⏮</button>
            <button type="button" className="btn btn-sm" onClick={() => stepPath('prev')} aria-label="Previous step">◀</button>
            {path.stepper.playing ? (
              <button type="button" className="btn btn-sm" onClick={() => stepPath('pause')} aria-label="Pause">⏸</button>
            ) : (
              <button type="button" className="btn btn-sm" onClick={() => stepPath('play')} aria-label="Play">▶</button>
            )}
            <button type="button" className="btn btn-sm" onClick={() => stepPath('next')} aria-label="Next step">▶▶</button>
            <button type="button" className="btn btn-sm" onClick={() => stepPath('last')} aria-label="Last step">⏭</button>
            <span className="ml-2 text-xs text-slate-500" aria-live="polite">
              step {path.stepper.index + 1} of {path.frames.length}
            </span>
          </div>
          <ol className="space-y-1 text-sm" data-testid="sim-steps">
            {result.steps.map((s, i) => (
              <li key={i} data-node-id={s.node_id} className={`rounded border px-2 py-1 ${frame && i === frame.index ? 'border-emerald-400 bg-emerald-50' : 'border-slate-200'}`}>
                <div className="flex justify-between">
                  <span>
                    {i + 1}. {nodeName(s.node_id)}
                  </span>
                  <span className="text-xs text-slate-500">{s.output ? `→ ${outputLabel(s.node_id, s.output)}` : ''}</span>
                </div>
                {s.error && <div className="text-xs text-red-600">{s.error}</div>}
                {i === frame?.index && s.logs.length > 0 && (
                  <pre className="mt-1 whitespace-pre-wrap text-[11px] text-slate-600">{s.logs.join('\n')}</pre>
                )}
              </li>
            ))}
          </ol>
        </section>
      )}
    </div>
  );
}
