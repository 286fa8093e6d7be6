// The outbound route form: dialled-number patterns with a live hint of what each matches,
// the trunks in the order they are tried, strip/prepend, the caller ID presented, the class of
// numbers and who may use it. Server validation errors (422, `patterns[1]`, `trunk_ids[0]`)
// are shown next to the pattern, trunk or extension they name.
import { useMemo, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import { keys, useEntities } from '../../api/queries';
import type { CallClass, Id, OutboundRoute, OutboundRouteCreate, RouteCallerId } from '../../api/types';
import { Checkbox, ErrorBanner, NumberInput, Select, TextInput } from '../common/ui';
import { CALL_CLASSES } from '../entities/outbound';
import { describePattern, exampleNumber, manipulate, matches, normalisePattern, parsePattern } from './patterns';

export interface RouteValues {
  name: string;
  enabled: boolean;
  position: number;
  patterns: string[];
  call_class: CallClass;
  strip_digits: number | null;
  prepend: string;
  caller_id_mode: RouteCallerId;
  caller_id_name: string;
  caller_id_num: string;
  extension_ids: Id[];
  trunk_ids: Id[];
}

/** A new route's values (the server's defaults; `position` puts it last). */
export function routeDefaults(position: number): RouteValues {
  return { name: '', enabled: true, position, patterns: [''], call_class: 'national', strip_digits: 0, prepend: '', caller_id_mode: 'extension', caller_id_name: '', caller_id_num: '', extension_ids: [], trunk_ids: [] };
}

/** The body sent: empty caller ID text is null (none), the rest as edited. */
export function routeBody(v: RouteValues): OutboundRouteCreate {
  return {
    name: v.name,
    enabled: v.enabled,
    position: v.position,
    patterns: v.patterns,
    call_class: v.call_class,
    strip_digits: v.strip_digits ?? 0,
    prepend: v.prepend.trim(),
    caller_id_mode: v.caller_id_mode,
    caller_id_name: v.caller_id_name.trim() || null,
    caller_id_num: v.caller_id_num.trim() || null,
    extension_ids: v.extension_ids,
    trunk_ids: v.trunk_ids,
  };
}

/** Fields the form shows; an error on another one goes in the banner. */
const SHOWN = ['name', 'enabled', 'position', 'patterns', 'call_class', 'strip_digits', 'prepend', 'caller_id_mode', 'caller_id_name', 'caller_id_num', 'extension_ids', 'trunk_ids'];

const CALLER_ID_MODES: { value: RouteCallerId; label: string; help: string }[] = [
  { value: 'extension', label: 'The extension’s', help: 'Its outbound caller ID, else the one below, else its extension number.' },
  { value: 'route', label: 'This route’s', help: 'Every call through this route presents the caller ID below.' },
  { value: 'trunk', label: 'The trunk’s', help: 'Each trunk presents its own caller ID.' },
  { value: 'anonymous', label: 'Withheld', help: 'The caller ID is withheld (anonymous).' },
];

export function RouteForm({ route, position, onSaved, onCancel }: { route?: OutboundRoute | null; position: number; onSaved: (r: OutboundRoute) => void; onCancel?: () => void }) {
  const editing = !!route;
  const [v, setV] = useState<RouteValues>(() =>
    route
      ? {
          ...routeDefaults(route.position),
          ...route,
          strip_digits: route.strip_digits,
          caller_id_name: route.caller_id_name ?? '',
          caller_id_num: route.caller_id_num ?? '',
          patterns: route.patterns.length ? route.patterns : [''],
        }
      : routeDefaults(position),
  );
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [banner, setBanner] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const qc = useQueryClient();
  const idp = `route-${route?.id ?? 'new'}`;

  const set = <K extends keyof RouteValues>(k: K, x: RouteValues[K]) => {
    setV((prev) => ({ ...prev, [k]: x }));
    // an edited field's error is stale (for a list, its entries' too)
    setErrors((e) => Object.fromEntries(Object.entries(e).filter(([f]) => f !== k && !f.startsWith(`${k}.`))));
  };

  const submit = async (ev: React.FormEvent) => {
    ev.preventDefault();
    setBanner(null);
    setErrors({});
    setSaving(true);
    try {
      const body = routeBody(v);
      const saved = route ? await api.outboundRoutes.update(route.id, body) : await api.outboundRoutes.create(body);
      void qc.invalidateQueries({ queryKey: keys.outboundRoutes });
      onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) {
        const fe = e.fieldErrors();
        setErrors(fe);
        const unnamed = e.details.filter((d) => !d.field).map((d) => d.message);
        const unshown = Object.entries(fe).filter(([f]) => !SHOWN.some((s) => f === s || f.startsWith(`${s}.`)));
        const all = Object.keys(fe).length > 0 && unnamed.length === 0 && unshown.length === 0;
        setBanner(all ? null : [e.message, ...unnamed, ...unshown.map(([f, m]) => `${f}: ${m}`)].join(' '));
      } else setBanner(errorMessage(e));
    } finally {
      setSaving(false);
    }
  };

  return (
    <form onSubmit={submit} noValidate aria-label={`${editing ? 'Edit' : 'New'} outbound route`}>
      <ErrorBanner error={banner} />
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <TextInput id={`${idp}-name`} label="Name" required className="sm:col-span-2" placeholder="National" value={v.name} error={errors.name} onChange={(x) => set('name', x)} />
        <Select id={`${idp}-call_class`} label="Class of numbers" value={v.call_class} error={errors.call_class} help="Extensions need this class to use the route"
          onChange={(x) => set('call_class', x as CallClass)} options={CALL_CLASSES.map((c) => ({ value: c.value, label: c.label }))} />
      </div>
      <Checkbox id={`${idp}-enabled`} label="Enabled" checked={v.enabled} error={errors.enabled} onChange={(x) => set('enabled', x)} />
      {errors.position && <ErrorBanner error={`Position: ${errors.position}`} />}
      <PatternsEditor id={`${idp}-patterns`} patterns={v.patterns} onChange={(x) => set('patterns', x)} errors={errors}
        warnings={route ? warningsByPattern(route) : {}}
        strip={v.strip_digits ?? 0} prepend={v.prepend} />
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <NumberInput id={`${idp}-strip_digits`} label="Strip digits" min={0} max={20} value={v.strip_digits} error={errors.strip_digits} help="Taken off the front of the dialled number" onChange={(x) => set('strip_digits', x)} />
        <TextInput id={`${idp}-prepend`} label="Prepend" placeholder="+61" value={v.prepend} error={errors.prepend} help="Put in front after stripping (digits, +, *, #)" onChange={(x) => set('prepend', x)} />
      </div>
      <TrunkPriority id={`${idp}-trunks`} value={v.trunk_ids} onChange={(x) => set('trunk_ids', x)} errors={errors} />
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <Select id={`${idp}-caller_id_mode`} label="Caller ID presented" value={v.caller_id_mode} error={errors.caller_id_mode}
          help={CALLER_ID_MODES.find((m) => m.value === v.caller_id_mode)?.help} onChange={(x) => set('caller_id_mode', x as RouteCallerId)}
          options={CALLER_ID_MODES.map((m) => ({ value: m.value, label: m.label }))} />
        {(v.caller_id_mode === 'route' || v.caller_id_mode === 'extension') && (
          <>
            <TextInput id={`${idp}-caller_id_num`} label="Caller ID number" required={v.caller_id_mode === 'route'} placeholder="+61290000000" value={v.caller_id_num} error={errors.caller_id_num}
              onChange={(x) => set('caller_id_num', x)} />
            <TextInput id={`${idp}-caller_id_name`} label="Caller ID name" placeholder="Acme Pty Ltd" value={v.caller_id_name} error={errors.caller_id_name} onChange={(x) => set('caller_id_name', x)} />
          </>
        )}
      </div>
      <AllowedExtensions id={`${idp}-extensions`} value={v.extension_ids} callClass={v.call_class} onChange={(x) => set('extension_ids', x)} errors={errors} />
      <div className="mt-4 flex flex-wrap items-center justify-end gap-2">
        {onCancel && (
          <button type="button" className="btn" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" className="btn btn-primary" disabled={saving}>
          {saving ? 'Saving…' : editing ? 'Save' : 'Create route'}
        </button>
      </div>
    </form>
  );
}

/** A saved route's advice (`patterns[2]`: never reached…) by pattern index. */
export function warningsByPattern(route: OutboundRoute): Record<number, { message: string; pattern: string }> {
  const out: Record<number, { message: string; pattern: string }> = {};
  for (const w of route.warnings ?? []) {
    const m = /^patterns\[(\d+)\]$/.exec(w.field);
    const i = m ? Number(m[1]) : -1;
    if (route.patterns[i] !== undefined) out[i] = { message: w.message, pattern: route.patterns[i] };
  }
  return out;
}

/** What one pattern matches, as the hint under its field says it. */
export function patternHint(raw: string): { tone: 'info' | 'warn'; text: string; example?: string | null } {
  if (!raw.trim()) return { tone: 'info', text: 'A prefix (9), an Asterisk pattern (_NXXNXXXXXX) or a regular expression (^\\+44[0-9]+$)' };
  const p = parsePattern(raw);
  if (!p.ok) return { tone: 'warn', text: `Looks wrong: ${p.error}` };
  const example = exampleNumber(p.pattern);
  return { tone: 'info', text: describePattern(p.pattern), example };
}

function PatternsEditor({ id, patterns, onChange, errors, warnings, strip, prepend }: {
  id: string;
  patterns: string[];
  onChange: (p: string[]) => void;
  errors: Record<string, string>;
  /** the saved route's advice by pattern index, while that pattern is unchanged */
  warnings: Record<number, { message: string; pattern: string }>;
  strip: number;
  prepend: string;
}) {
  const [tryNumber, setTryNumber] = useState('');
  const parsed = useMemo(() => patterns.map((p) => parsePattern(p)), [patterns]);
  const first = parsed.findIndex((p) => p.ok && tryNumber.trim() !== '' && matches(p.pattern, tryNumber.trim()) === true);
  const unsure = parsed.some((p) => p.ok && matches(p.pattern, tryNumber.trim()) === null);
  return (
    <fieldset className="mb-3" aria-describedby={errors.patterns ? `${id}-error` : undefined}>
      <legend className="label after:ml-0.5 after:text-red-600 after:content-['*']">Dialled numbers (first match wins)</legend>
      <ul className="space-y-2" aria-label="Patterns">
        {patterns.map((p, i) => {
          const fid = `${id}-${i}`;
          const err = errors[`patterns.${i}`];
          const hint = patternHint(p);
          const warn = warnings[i] && normalisePattern(p) === warnings[i].pattern ? warnings[i].message : null;
          return (
            <li key={i}>
              <div className="flex items-center gap-2">
                <label htmlFor={fid} className="sr-only">
                  Pattern {i + 1}
                </label>
                <input id={fid} className={`input font-mono ${err ? 'input-error' : ''}`} value={p} placeholder="_0[2-9]XXXXXXXX" spellCheck={false} autoComplete="off"
                  aria-invalid={err ? true : undefined} aria-describedby={err ? `${fid}-error` : `${fid}-hint`}
                  onChange={(ev) => onChange(patterns.map((x, j) => (j === i ? ev.target.value : x)))} />
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove pattern ${i + 1}`} disabled={patterns.length === 1}
                  onClick={() => onChange(patterns.filter((_, j) => j !== i))}>
                  ✕
                </button>
              </div>
              {err ? (
                <p id={`${fid}-error`} role="alert" className="mt-1 text-xs text-red-600">
                  {err}
                </p>
              ) : (
                <p id={`${fid}-hint`} className={`mt-1 text-xs ${hint.tone === 'warn' ? 'text-amber-700' : 'text-slate-500'}`} data-testid={`pattern-hint-${i}`}>
                  {hint.text}
                  {hint.example && (
                    <>
                      {' '}
                      — e.g. <span className="font-mono">{hint.example}</span>
                      {(strip > 0 || prepend) && (
                        <>
                          , sent as <span className="font-mono">{manipulate(hint.example, strip, prepend.trim())}</span>
                        </>
                      )}
                    </>
                  )}
                </p>
              )}
              {warn && <p className="mt-0.5 text-xs text-amber-700">Never reached: {warn}</p>}
            </li>
          );
        })}
      </ul>
      {errors.patterns && (
        <p id={`${id}-error`} role="alert" className="mt-1 text-xs text-red-600">
          {errors.patterns}
        </p>
      )}
      <div className="mt-2 flex flex-wrap items-end gap-3">
        <button type="button" className="btn btn-sm" onClick={() => onChange([...patterns, ''])} disabled={patterns.length >= 20}>
          Add pattern
        </button>
        <div className="flex items-center gap-2">
          <label htmlFor={`${id}-try`} className="text-xs text-slate-600">
            Try a number
          </label>
          <input id={`${id}-try`} className="input w-44 font-mono" value={tryNumber} placeholder="0290000000" inputMode="tel" onChange={(ev) => setTryNumber(ev.target.value)}
            aria-describedby={`${id}-try-result`} />
        </div>
      </div>
      {tryNumber.trim() && (
        <p id={`${id}-try-result`} role="status" className="mt-1 text-xs text-slate-700">
          {first >= 0 ? (
            <>
              Matches pattern {first + 1} (<span className="font-mono">{normalisePattern(patterns[first])}</span>); sent to the trunk as{' '}
              <span className="font-mono">{manipulate(tryNumber.trim(), strip, prepend.trim())}</span>.
            </>
          ) : unsure ? (
            'No pattern here matches it for sure (a regular expression is checked by the server).'
          ) : (
            'No pattern of this route matches it.'
          )}
        </p>
      )}
    </fieldset>
  );
}

function TrunkPriority({ id, value, onChange, errors }: { id: string; value: Id[]; onChange: (v: Id[]) => void; errors: Record<string, string> }) {
  const trunks = useEntities('trunk');
  const name = (t: Id) => trunks.data?.find((x) => x.id === t)?.name ?? `trunk #${t}`;
  const rest = (trunks.data ?? []).filter((t) => !value.includes(t.id));
  const move = (i: number, d: -1 | 1) => {
    const next = [...value];
    [next[i], next[i + d]] = [next[i + d], next[i]];
    onChange(next);
  };
  return (
    <fieldset className="mb-3" aria-describedby={errors.trunk_ids ? `${id}-error` : `${id}-help`}>
      <legend className="label after:ml-0.5 after:text-red-600 after:content-['*']">Trunks, in the order they are tried</legend>
      {value.length > 0 && (
        <ol className="mb-2 space-y-1" aria-label="Trunks in order">
          {value.map((t, i) => (
            <li key={t} className="rounded border border-slate-200 px-2 py-1 text-sm">
              <div className="flex items-center gap-2">
                <span className="w-5 text-slate-500">{i + 1}.</span>
                <span className="flex-1">{name(t)}</span>
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Try ${name(t)} earlier`} disabled={i === 0} onClick={() => move(i, -1)}>
                  ↑
                </button>
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Try ${name(t)} later`} disabled={i === value.length - 1} onClick={() => move(i, 1)}>
                  ↓
                </button>
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove ${name(t)}`} onClick={() => onChange(value.filter((x) => x !== t))}>
                  ✕
                </button>
              </div>
              {errors[`trunk_ids.${i}`] && (
                <p role="alert" className="ml-7 text-xs text-red-600">
                  {errors[`trunk_ids.${i}`]}
                </p>
              )}
            </li>
          ))}
        </ol>
      )}
      <div className="flex items-center gap-2">
        <label htmlFor={`${id}-add`} className="sr-only">
          Add a trunk
        </label>
        <select id={`${id}-add`} className="input w-60" value="" onChange={(ev) => ev.target.value && onChange([...value, Number(ev.target.value)])}>
          <option value="">{rest.length ? 'Add a trunk…' : value.length ? 'Every trunk is listed' : 'No trunks yet'}</option>
          {rest.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
              {t.enabled ? '' : ' (disabled)'}
            </option>
          ))}
        </select>
      </div>
      {errors.trunk_ids ? (
        <p id={`${id}-error`} role="alert" className="mt-1 text-xs text-red-600">
          {errors.trunk_ids}
        </p>
      ) : (
        <p id={`${id}-help`} className="mt-1 text-xs text-slate-500">
          The next one is tried when a trunk is down, full, times out or fails (408, 5xx, most 6xx); not when the callee is busy or declines.
        </p>
      )}
    </fieldset>
  );
}

function AllowedExtensions({ id, value, callClass, onChange, errors }: { id: string; value: Id[]; callClass: CallClass; onChange: (v: Id[]) => void; errors: Record<string, string> }) {
  const exts = useEntities('extension');
  const [q, setQ] = useState('');
  const all = exts.data ?? [];
  const shown = q.trim() ? all.filter((x) => `${x.extension} ${x.name}`.toLowerCase().includes(q.trim().toLowerCase())) : all;
  // errors on entries (`extension_ids[2]`) name the extension listed there
  const entryErrors = value.map((x, i) => [x, errors[`extension_ids.${i}`]] as const).filter(([, m]) => !!m);
  const without = all.filter((x) => !(x.call_classes ?? []).includes(callClass));
  const failed = !!errors.extension_ids || entryErrors.length > 0;
  return (
    <fieldset className="mb-3" id={id} aria-describedby={failed ? `${id}-error` : undefined}>
      <legend className="label">Who may use it</legend>
      <p className="mb-1 text-xs text-slate-500">
        {value.length === 0
          ? `Nobody ticked: every extension allowed ${callClass} calls.`
          : `Only the ${value.length} ticked extension${value.length > 1 ? 's' : ''}, and only if allowed ${callClass} calls.`}
        {without.length > 0 && ` ${without.length} extension${without.length > 1 ? 's are' : ' is'} not allowed ${callClass} calls.`}
      </p>
      {all.length > 8 && (
        <input className="input mb-1 w-48" placeholder="Filter extensions…" aria-label="Filter extensions" value={q} onChange={(ev) => setQ(ev.target.value)} />
      )}
      <div className="max-h-40 overflow-y-auto rounded border border-slate-200 p-2">
        {all.length === 0 && <p className="text-xs text-slate-500">No extensions yet.</p>}
        {shown.map((x) => (
          <label key={x.id} className="flex items-center gap-2 text-sm">
            <input type="checkbox" className="h-4 w-4" checked={value.includes(x.id)} onChange={(ev) => onChange(ev.target.checked ? [...value, x.id] : value.filter((y) => y !== x.id))} />
            {x.extension} {x.name}
            {!(x.call_classes ?? []).includes(callClass) && <span className="text-xs text-amber-700">(not allowed {callClass})</span>}
          </label>
        ))}
      </div>
      {failed && (
        <p id={`${id}-error`} role="alert" className="mt-1 text-xs text-red-600">
          {[errors.extension_ids, ...entryErrors.map(([x, m]) => `extension #${x}: ${m}`)].filter(Boolean).join(' ')}
        </p>
      )}
    </fieldset>
  );
}
