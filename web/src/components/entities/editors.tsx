// Editors for the JSON columns of the data model: IVR digit maps, time-switch rules and
// overrides with a weekly grid preview, ring group members (follow-me is in followMe.tsx).
import { useMemo, useState } from 'react';
import type { EntityMap } from '../../api/entities';
import type { Id, IvrOptions, TimeOverride, TimeRule, Weekday } from '../../api/types';
import { useEntities } from '../../api/queries';
import { Dialog, StatusDot } from '../common/ui';
import { entityStatus } from '../../api/entities';
import { useLive } from '../../api/live';

export const DIGITS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0', '*', '#'];

export function DigitMapEditor({
  id,
  value,
  onChange,
  error,
}: {
  id: string;
  value: IvrOptions;
  onChange: (v: IvrOptions) => void;
  error?: string;
}) {
  const entries = DIGITS.filter((d) => d in (value ?? {}));
  const free = DIGITS.filter((d) => !(d in (value ?? {})));
  const set = (d: string, label: string) => onChange({ ...value, [d]: label });
  const remove = (d: string) => {
    const next = { ...value };
    delete next[d];
    onChange(next);
  };
  const rename = (from: string, to: string) => {
    const next: IvrOptions = {};
    // keys that are not digits ("i", "t") are kept as they are
    for (const [k, v] of Object.entries(value)) if (!DIGITS.includes(k)) next[k] = v;
    for (const d of DIGITS) {
      if (d === from) next[to] = value[from];
      else if (d in value && d !== to) next[d] = value[d];
    }
    onChange(next);
  };
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3" aria-describedby={error ? `${id}-error` : undefined}>
      <legend className="px-1 text-sm font-medium text-slate-700">Digit map</legend>
      <p className="mb-2 text-xs text-slate-500">
        Each digit becomes an output of the node; connect it on the canvas. Timeout and invalid input have outputs of their own.
      </p>
      {error && (
        <p id={`${id}-error`} role="alert" className="mb-2 text-xs text-red-600">
          {error}
        </p>
      )}
      <table className="mb-2 w-full text-sm">
        <tbody>
          {entries.map((d) => (
            <tr key={d}>
              <td className="w-24 py-1 pr-2">
                <label className="sr-only" htmlFor={`${id}-digit-${d}`}>
                  Digit
                </label>
                <select id={`${id}-digit-${d}`} className="input" value={d} onChange={(e) => rename(d, e.target.value)}>
                  {[d, ...free].map((x) => (
                    <option key={x} value={x}>
                      {x}
                    </option>
                  ))}
                </select>
              </td>
              <td className="py-1 pr-2">
                <label className="sr-only" htmlFor={`${id}-label-${d}`}>
                  Label for digit {d}
                </label>
                <input
                  id={`${id}-label-${d}`}
                  className="input"
                  placeholder="e.g. Sales"
                  value={value[d] ?? ''}
                  onChange={(e) => set(d, e.target.value)}
                />
              </td>
              <td className="w-8 py-1">
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove digit ${d}`} onClick={() => remove(d)}>
                  ✕
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button type="button" className="btn btn-sm" disabled={free.length === 0} onClick={() => set(free[0], '')}>
        Add digit {free[0] ?? ''}
      </button>
    </fieldset>
  );
}

export const WEEKDAYS: { key: Weekday; short: string }[] = [
  { key: 'mon', short: 'Mon' },
  { key: 'tue', short: 'Tue' },
  { key: 'wed', short: 'Wed' },
  { key: 'thu', short: 'Thu' },
  { key: 'fri', short: 'Fri' },
  { key: 'sat', short: 'Sat' },
  { key: 'sun', short: 'Sun' },
];

export function TimeRulesEditor({
  id,
  rules,
  onChange,
  errors,
}: {
  id: string;
  rules: TimeRule[];
  onChange: (v: TimeRule[]) => void;
  errors: Record<string, string>;
}) {
  const update = (i: number, patch: Partial<TimeRule>) => onChange(rules.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const move = (i: number, d: number) => {
    const j = i + d;
    if (j < 0 || j >= rules.length) return;
    const next = [...rules];
    [next[i], next[j]] = [next[j], next[i]];
    onChange(next);
  };
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium text-slate-700">Rules</legend>
      <p className="mb-2 text-xs text-slate-500">Checked top to bottom; the first that matches wins. Each rule is an output of the node (named by its label), plus “No match”.</p>
      {errors.rules && (
        <p role="alert" className="mb-2 text-xs text-red-600">
          {errors.rules}
        </p>
      )}
      {rules.map((r, i) => {
        const e = (f: string) => errors[`rules.${i}.${f}`];
        return (
          <div key={i} className="mb-2 rounded border border-slate-100 bg-slate-50 p-2">
            <div className="flex flex-wrap items-end gap-2">
              <div className="min-w-32 flex-1">
                <label className="label" htmlFor={`${id}-r${i}-label`}>
                  Label
                </label>
                <input
                  id={`${id}-r${i}-label`}
                  className={`input ${e('label') ? 'input-error' : ''}`}
                  value={r.label}
                  onChange={(ev) => update(i, { label: ev.target.value })}
                />
              </div>
              <div>
                <label className="label" htmlFor={`${id}-r${i}-start`}>
                  From
                </label>
                <input id={`${id}-r${i}-start`} type="time" className={`input ${e('start') ? 'input-error' : ''}`} value={r.start} onChange={(ev) => update(i, { start: ev.target.value })} />
              </div>
              <div>
                <label className="label" htmlFor={`${id}-r${i}-end`}>
                  To
                </label>
                <input id={`${id}-r${i}-end`} type="time" className={`input ${e('end') ? 'input-error' : ''}`} value={r.end} onChange={(ev) => update(i, { end: ev.target.value })} />
              </div>
              <div className="flex gap-1">
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Move rule ${i + 1} up`} onClick={() => move(i, -1)} disabled={i === 0}>
                  ↑
                </button>
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Move rule ${i + 1} down`} onClick={() => move(i, 1)} disabled={i === rules.length - 1}>
                  ↓
                </button>
                <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove rule ${i + 1}`} onClick={() => onChange(rules.filter((_, j) => j !== i))}>
                  ✕
                </button>
              </div>
            </div>
            <div className="mt-2 flex flex-wrap gap-1" role="group" aria-label={`Days of rule ${i + 1}`}>
              {WEEKDAYS.map((d) => {
                const on = r.days.includes(d.key);
                return (
                  <button
                    key={d.key}
                    type="button"
                    aria-pressed={on}
                    className={`btn btn-sm ${on ? 'btn-primary' : ''}`}
                    onClick={() => update(i, { days: on ? r.days.filter((x) => x !== d.key) : WEEKDAYS.map((w) => w.key).filter((k) => k === d.key || r.days.includes(k)) })}
                  >
                    {d.short}
                  </button>
                );
              })}
            </div>
            {(e('days') || e('label') || e('start') || e('end')) && (
              <p role="alert" className="mt-1 text-xs text-red-600">
                {e('label') ?? e('days') ?? e('start') ?? e('end')}
              </p>
            )}
          </div>
        );
      })}
      <button
        type="button"
        className="btn btn-sm"
        onClick={() => onChange([...rules, { label: rules.length === 0 ? 'Business hours' : `Rule ${rules.length + 1}`, days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' }])}
      >
        Add rule
      </button>
    </fieldset>
  );
}

export function OverridesEditor({
  id,
  overrides,
  rules,
  onChange,
  errors,
}: {
  id: string;
  overrides: TimeOverride[];
  rules: TimeRule[];
  onChange: (v: TimeOverride[]) => void;
  errors: Record<string, string>;
}) {
  const update = (i: number, patch: Partial<TimeOverride>) => onChange(overrides.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  const outputs = [{ value: '', label: 'its own output' }, { value: 'default', label: 'No match' }, ...rules.map((r) => ({ value: r.label, label: r.label }))];
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium text-slate-700">Holidays and date overrides</legend>
      <p className="mb-2 text-xs text-slate-500">On these dates the weekly rules are ignored and the call takes the chosen output.</p>
      {overrides.map((o, i) => {
        const e = (f: string) => errors[`overrides.${i}.${f}`];
        return (
          <div key={i} className="mb-2 flex flex-wrap items-end gap-2">
            <div className="min-w-28 flex-1">
              <label className="label" htmlFor={`${id}-o${i}-label`}>
                Label
              </label>
              <input id={`${id}-o${i}-label`} className={`input ${e('label') ? 'input-error' : ''}`} value={o.label} onChange={(ev) => update(i, { label: ev.target.value })} />
            </div>
            <div>
              <label className="label" htmlFor={`${id}-o${i}-date`}>
                Date
              </label>
              <input id={`${id}-o${i}-date`} type="date" className={`input ${e('date') ? 'input-error' : ''}`} value={o.date} onChange={(ev) => update(i, { date: ev.target.value })} />
            </div>
            <div>
              <label className="label" htmlFor={`${id}-o${i}-end`}>
                Until
              </label>
              <input id={`${id}-o${i}-end`} type="date" className="input" value={o.end_date ?? ''} onChange={(ev) => update(i, { end_date: ev.target.value || null })} />
            </div>
            <div>
              <label className="label" htmlFor={`${id}-o${i}-out`}>
                Route to
              </label>
              <select id={`${id}-o${i}-out`} className="input" value={o.dest_node ?? ''} onChange={(ev) => update(i, { dest_node: ev.target.value || null })}>
                {outputs.map((x) => (
                  <option key={x.value} value={x.value}>
                    {x.label}
                  </option>
                ))}
              </select>
            </div>
            <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove override ${i + 1}`} onClick={() => onChange(overrides.filter((_, j) => j !== i))}>
              ✕
            </button>
            {(e('date') || e('label')) && (
              <p role="alert" className="w-full text-xs text-red-600">
                {e('date') ?? e('label')}
              </p>
            )}
          </div>
        );
      })}
      <button type="button" className="btn btn-sm" onClick={() => onChange([...overrides, { label: 'Holiday', date: '', dest_node: 'default' }])}>
        Add date
      </button>
    </fieldset>
  );
}

function minutes(hhmm: string): number | null {
  const m = /^(\d{1,2}):(\d{2})$/.exec(hhmm);
  if (!m) return null;
  return Number(m[1]) * 60 + Number(m[2]);
}

/**
 * Which rule (index) wins at each half hour of the week, first match wins; -1 = no match. The
 * time switch node's semantics: a missing start is 00:00, a missing end 24:00, the end is
 * exclusive, and a rule whose end is not after its start runs overnight: from the start on its
 * days into the next morning (22:00–06:00 on Friday covers Friday night and Saturday until 6).
 */
export function weeklyGrid(rules: TimeRule[]): number[][] {
  return WEEKDAYS.map((d, di) =>
    Array.from({ length: 48 }, (_, slot) => {
      const t = slot * 30;
      const yesterday = WEEKDAYS[(di + 6) % 7].key;
      return rules.findIndex((r) => {
        const a = r.start ? minutes(r.start) : 0;
        const b = r.end ? minutes(r.end) : 1440;
        if (a === null || b === null) return false;
        if (a < b) return r.days.includes(d.key) && t >= a && t < b;
        return (r.days.includes(d.key) && t >= a) || (r.days.includes(yesterday) && t < b);
      });
    }),
  );
}

const RULE_COLORS = ['bg-indigo-500', 'bg-emerald-500', 'bg-amber-500', 'bg-sky-500', 'bg-fuchsia-500', 'bg-lime-500', 'bg-rose-500'];

export function WeeklyGrid({ rules }: { rules: TimeRule[] }) {
  const grid = useMemo(() => weeklyGrid(rules), [rules]);
  return (
    <figure className="mb-3">
      <figcaption className="mb-1 text-sm font-medium text-slate-700">Week preview</figcaption>
      <div className="overflow-x-auto">
        <table className="text-[10px]" aria-label="Which rule applies at each half hour">
          <thead>
            <tr>
              <th />
              {Array.from({ length: 24 }, (_, h) => (
                <th key={h} colSpan={2} className="px-0 text-left font-normal text-slate-400">
                  {h % 3 === 0 ? h : ''}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {grid.map((row, d) => (
              <tr key={d}>
                <th className="pr-1 text-left font-medium text-slate-600">{WEEKDAYS[d].short}</th>
                {row.map((ri, s) => (
                  <td
                    key={s}
                    title={`${WEEKDAYS[d].short} ${String(Math.floor(s / 2)).padStart(2, '0')}:${s % 2 ? '30' : '00'} → ${ri >= 0 ? rules[ri].label : 'No match'}`}
                    className={`h-3 w-2 border-r border-white ${ri >= 0 ? RULE_COLORS[ri % RULE_COLORS.length] : 'bg-slate-200'}`}
                  />
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="mt-1 flex flex-wrap gap-3 text-xs text-slate-600">
        {rules.map((r, i) => (
          <span key={i} className="inline-flex items-center gap-1">
            <span className={`inline-block h-2 w-3 ${RULE_COLORS[i % RULE_COLORS.length]}`} aria-hidden="true" />
            {r.label || `Rule ${i + 1}`}
          </span>
        ))}
        <span className="inline-flex items-center gap-1">
          <span className="inline-block h-2 w-3 bg-slate-200" aria-hidden="true" />
          No match
        </span>
      </div>
    </figure>
  );
}

/** Ordered extension members with a searchable add, reordering, and "New extension…" inline. */
export function MembersEditor({
  id,
  value,
  onChange,
  error,
  renderNewExtension,
}: {
  id: string;
  value: Id[];
  onChange: (v: Id[]) => void;
  error?: string;
  /** the shared extension form, in a dialog; calls back with the created extension */
  renderNewExtension: (done: (e: EntityMap['extension']) => void, cancel: () => void) => React.ReactNode;
}) {
  const exts = useEntities('extension');
  const regs = useLive((s) => s.registrations);
  const synced = useLive((s) => s.synced);
  const [creating, setCreating] = useState(false);
  const [filter, setFilter] = useState('');
  const byId = new Map((exts.data ?? []).map((e) => [e.id, e]));
  const candidates = (exts.data ?? []).filter(
    (e) => !value.includes(e.id) && `${e.extension} ${e.name}`.toLowerCase().includes(filter.toLowerCase()),
  );
  const move = (i: number, d: number) => {
    const j = i + d;
    if (j < 0 || j >= value.length) return;
    const next = [...value];
    [next[i], next[j]] = [next[j], next[i]];
    onChange(next);
  };
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium text-slate-700">Members</legend>
      {error && (
        <p role="alert" className="mb-2 text-xs text-red-600">
          {error}
        </p>
      )}
      <ol className="mb-2 space-y-1">
        {value.map((mid, i) => {
          const e = byId.get(mid);
          return (
            <li key={mid} className="flex items-center gap-2 rounded bg-slate-50 px-2 py-1 text-sm">
              <span className="flex-1">{e ? `${e.extension} ${e.name}` : `extension #${mid}`}</span>
              {e && <StatusDot status={entityStatus('extension', e, { registrations: synced ? (regs[String(e.id)] ?? 0) : undefined })} />}
              <button type="button" className="btn btn-ghost btn-sm" aria-label={`Move ${e?.name ?? mid} up`} onClick={() => move(i, -1)} disabled={i === 0}>
                ↑
              </button>
              <button type="button" className="btn btn-ghost btn-sm" aria-label={`Move ${e?.name ?? mid} down`} onClick={() => move(i, 1)} disabled={i === value.length - 1}>
                ↓
              </button>
              <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove ${e?.name ?? mid}`} onClick={() => onChange(value.filter((x) => x !== mid))}>
                ✕
              </button>
            </li>
          );
        })}
      </ol>
      <div className="flex flex-wrap items-center gap-2">
        <label htmlFor={`${id}-filter`} className="sr-only">
          Find an extension to add
        </label>
        <input id={`${id}-filter`} className="input max-w-48" placeholder="Find extension…" value={filter} onChange={(e) => setFilter(e.target.value)} />
        <label htmlFor={`${id}-add`} className="sr-only">
          Add member
        </label>
        <select
          id={`${id}-add`}
          className="input max-w-56"
          value=""
          onChange={(e) => {
            if (e.target.value === '__new') setCreating(true);
            else if (e.target.value) onChange([...value, Number(e.target.value)]);
          }}
        >
          <option value="">Add member…</option>
          <option value="__new">New extension…</option>
          {candidates.map((e) => (
            <option key={e.id} value={e.id}>
              {e.extension} {e.name}
            </option>
          ))}
        </select>
      </div>
      {creating && (
        <Dialog title="New extension" onClose={() => setCreating(false)}>
          {renderNewExtension(
            (e) => {
              onChange([...value, e.id]);
              setCreating(false);
            },
            () => setCreating(false),
          )}
        </Dialog>
      )}
    </fieldset>
  );
}
