// Follow-me on the extension form (host/call/src/b2bua/follow_me.rs): the switch, how the numbers ring (sequential or
// simultaneous), the "press 1 to accept" confirmation, and the numbers in order with their
// delay and ring time, each row showing when it rings. Server errors on a row's field
// (`follow_me_numbers[1].timeout`) are shown on that field and move with the row when rows
// are reordered or removed. Rendered by EntityForm.
//
// The limits are the server's (host/api/src/entities.rs, `validate::is_dial_string`); the
// form has no way to read them from the OpenAPI document, so they are written here, in the
// same words, and the server decides.
import { useEffect, useState } from 'react';
import type { FollowMeMode, FollowMeNumber } from '../../api/types';
import { Switch } from '../common/ui';

type Values = Record<string, unknown>;

export interface FollowMeProps {
  values: Values;
  set: (k: string, v: unknown) => void;
  errors: Record<string, string>;
  /** rename or drop (null) the form's errors: rows' errors follow their rows */
  remapErrors: (fn: (field: string) => string | null) => void;
  idp: string;
}

/** At most this many numbers (the server's limit). */
export const FOLLOW_ME_MAX = 10;
/** A number's delay, seconds (the server's range); 0 when not given. */
export const DELAY = { min: 0, max: 300, dflt: 0 };
/** A number's ring time, seconds (the server's range); 20 when not given. */
export const RING = { min: 5, max: 300, dflt: 20 };

export const MODES: { value: FollowMeMode; label: string; help: string }[] = [
  { value: 'sequential', label: 'Sequential', help: "ring this extension's phones first, then each number in order" },
  { value: 'simultaneous', label: 'Simultaneous', help: 'ring phones and numbers together, each after its delay' },
];

/** Spaces, dashes, dots and brackets people write numbers with; they are not sent. */
export function cleanNumber(s: string): string {
  return s.replace(/[\s\-().]/g, '');
}

/** What the server takes as a number: 2–20 digits, * or #, optionally after a + (`is_dial_string`). */
export function isDialString(s: string): boolean {
  return /^\+?[0-9*#]{2,20}$/.test(s);
}

/** When each number rings, in seconds from when the extension is rung, and the phones' end. */
export function followMeTimeline(numbers: FollowMeNumber[], mode: FollowMeMode, phonesFor: number): { phones: number; rows: [number, number][] } {
  if (mode === 'simultaneous') {
    const rows = numbers.map((n): [number, number] => {
      const from = n.delay ?? DELAY.dflt;
      return [from, from + (n.timeout ?? RING.dflt)];
    });
    // the phones ring as long as the last number does
    return { phones: Math.max(phonesFor, ...rows.map((r) => r[1])), rows };
  }
  let at = phonesFor;
  const rows = numbers.map((n): [number, number] => {
    const from = at;
    at += n.timeout ?? RING.dflt;
    return [from, at];
  });
  return { phones: phonesFor, rows };
}

const ROW = /^follow_me_numbers\.(\d+)(\..+)?$/;

/** The request's numbers: separators taken out of each number. */
export function followMeBody(numbers: FollowMeNumber[]): FollowMeNumber[] {
  return numbers.map((n) => ({ ...n, number: cleanNumber(n.number) }));
}

export function FollowMeFields({ values: v, set, errors, remapErrors, idp }: FollowMeProps) {
  const enabled = v.follow_me_enabled === true;
  const numbers = (v.follow_me_numbers as FollowMeNumber[] | undefined) ?? [];
  const mode: FollowMeMode = v.follow_me_mode === 'simultaneous' ? 'simultaneous' : 'sequential';
  const confirm = v.follow_me_confirm !== false;
  const phonesFor = typeof v.ring_timeout === 'number' ? v.ring_timeout : 30;
  const id = `${idp}-fm`;
  const fmErrors = Object.entries(errors).filter(([k, m]) => m && k.startsWith('follow_me_'));
  // a server error on follow-me is shown even when it is switched off
  const open = enabled || fmErrors.length > 0;
  const rowError = (i: number, f: string) => errors[`follow_me_numbers.${i}.${f}`] || undefined;
  const showDelay = mode === 'simultaneous' || numbers.some((_, i) => rowError(i, 'delay'));
  const { phones, rows } = followMeTimeline(numbers, mode, phonesFor);

  // focus goes where the row went (after Add, a move, a removal)
  const [focus, setFocus] = useState<string | null>(null);
  useEffect(() => {
    if (!focus) return;
    document.getElementById(focus)?.focus();
    setFocus(null);
  }, [focus]);

  const update = (i: number, patch: Partial<FollowMeNumber>) => {
    set('follow_me_numbers', numbers.map((r, j) => (j === i ? { ...r, ...patch } : r)));
    const edited = Object.keys(patch);
    remapErrors((f) => {
      const m = ROW.exec(f);
      return m && Number(m[1]) === i && (!m[2] || edited.includes(m[2].slice(1))) ? null : f;
    });
  };
  const move = (i: number, d: -1 | 1) => {
    const j = i + d;
    if (j < 0 || j >= numbers.length) return;
    const next = [...numbers];
    [next[i], next[j]] = [next[j], next[i]];
    set('follow_me_numbers', next);
    remapErrors((f) => {
      const m = ROW.exec(f);
      if (!m) return f;
      const k = Number(m[1]);
      return k === i ? `follow_me_numbers.${j}${m[2] ?? ''}` : k === j ? `follow_me_numbers.${i}${m[2] ?? ''}` : f;
    });
    // at the ends the button the focus was on is disabled: the other one
    const edge = j === 0 || j === numbers.length - 1;
    setFocus(`${id}-${j}-${edge ? (d < 0 ? 'down' : 'up') : d < 0 ? 'up' : 'down'}`);
  };
  const remove = (i: number) => {
    set('follow_me_numbers', numbers.filter((_, j) => j !== i));
    remapErrors((f) => {
      const m = ROW.exec(f);
      if (!m) return f;
      const k = Number(m[1]);
      return k === i ? null : k > i ? `follow_me_numbers.${k - 1}${m[2] ?? ''}` : f;
    });
    setFocus(numbers.length > 1 ? `${id}-${Math.min(i, numbers.length - 2)}-number` : `${id}-add`);
  };
  const add = () => {
    set('follow_me_numbers', [...numbers, { number: '', delay: DELAY.dflt, timeout: RING.dflt }]);
    setFocus(`${id}-${numbers.length}-number`);
  };

  const listError = errors.follow_me_numbers || undefined;
  const full = numbers.length >= FOLLOW_ME_MAX;

  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-semibold">Follow me</legend>
      <Switch
        id={`${idp}-follow_me_enabled`}
        label="Follow me"
        checked={enabled}
        error={errors.follow_me_enabled}
        help={
          enabled
            ? 'When this extension is called, the numbers below ring too: a mobile, a home phone, another extension.'
            : numbers.length > 0
              ? `Off: its ${numbers.length === 1 ? 'number is' : `${numbers.length} numbers are`} kept for when it is turned on.`
              : 'Off: when this extension is called, only its phones ring.'
        }
        onChange={(x) => set('follow_me_enabled', x)}
      />
      {open && (
        <>
          <fieldset className="mb-3" aria-describedby={errors.follow_me_mode ? `${id}-mode-error` : undefined}>
            <legend className="label">How the numbers ring</legend>
            {MODES.map((m) => (
              <div key={m.value} className="mb-1 flex items-start gap-2">
                <input
                  id={`${id}-mode-${m.value}`}
                  type="radio"
                  name={`${id}-mode`}
                  value={m.value}
                  className="mt-0.5 h-4 w-4 border-slate-300 text-indigo-600"
                  checked={mode === m.value}
                  aria-describedby={`${id}-mode-${m.value}-help`}
                  onChange={() => set('follow_me_mode', m.value)}
                />
                <p className="text-sm text-slate-700">
                  <label htmlFor={`${id}-mode-${m.value}`} className="font-medium">
                    {m.label}
                  </label>
                  <span id={`${id}-mode-${m.value}-help`} className="text-slate-500">
                    : {m.help}
                  </span>
                </p>
              </div>
            ))}
            {errors.follow_me_mode && (
              <p id={`${id}-mode-error`} role="alert" className="mt-1 text-xs text-red-600">
                {errors.follow_me_mode}
              </p>
            )}
          </fieldset>
          <Switch
            id={`${idp}-follow_me_confirm`}
            label="Ask outside numbers to press 1 before connecting, so a mobile's voicemail cannot take the call"
            checked={confirm}
            error={errors.follow_me_confirm}
            help={
              confirm
                ? 'Another extension’s number is never asked. A number that does not press 1 is hung up and the others ring on.'
                : 'Off: whoever answers an outside number first gets the call, a mobile’s voicemail included.'
            }
            onChange={(x) => set('follow_me_confirm', x)}
          />
          <div role="group" aria-labelledby={`${id}-numbers-label`} aria-describedby={listError ? `${id}-numbers-error` : `${id}-numbers-help`}>
            <p id={`${id}-numbers-label`} className="label">
              Numbers, in order
            </p>
            <p className="mb-2 text-xs text-slate-500">
              {mode === 'sequential'
                ? `Phones ring for ${phones} s (the extension's ring timeout; a flow's ring node may set its own), then each number for its ring time. A number that is busy or fails moves on at once.`
                : `Phones ring for ${phones} s (the ring timeout, or until the last number stops); each number starts after its delay and rings for its ring time.`}
            </p>
            {numbers.length > 0 && (
              <div className="mb-1 hidden items-end gap-2 border border-transparent px-2 text-xs font-medium text-slate-500 sm:flex" aria-hidden="true">
                <span className="w-5 shrink-0" />
                <span className="min-w-28 flex-1">Number</span>
                {showDelay && <span className="w-[4.5rem] shrink-0">Delay (s)</span>}
                <span className="w-[4.5rem] shrink-0">Ring (s)</span>
                <span className="w-16 shrink-0">Rings</span>
                <span className="w-[5.25rem] shrink-0" />
              </div>
            )}
            <ol className="mb-2">
              {numbers.map((n, i) => {
                const e = { number: rowError(i, 'number'), delay: rowError(i, 'delay'), timeout: rowError(i, 'timeout') };
                const whole = errors[`follow_me_numbers.${i}`] || undefined;
                const cleaned = cleanNumber(n.number);
                const looksWrong = !e.number && cleaned !== '' && !isDialString(cleaned);
                const [from, to] = rows[i];
                const desc = (f: keyof typeof e, extra?: string) => [e[f] ? `${id}-${i}-${f}-error` : null, whole ? `${id}-${i}-error` : null, extra ?? null].filter(Boolean).join(' ') || undefined;
                return (
                  <li key={i} className="mb-2 rounded border border-slate-100 bg-slate-50 p-2" data-testid={`follow-me-row-${i}`}>
                    <div className="flex flex-wrap items-center gap-2">
                      <span className="w-5 shrink-0 text-right text-xs text-slate-500" aria-hidden="true">
                        {i + 1}.
                      </span>
                      <div className="min-w-28 flex-1">
                        <label htmlFor={`${id}-${i}-number`} className="sr-only">
                          Number {i + 1}
                        </label>
                        <input
                          id={`${id}-${i}-number`}
                          className={`input ${e.number ? 'input-error' : ''}`}
                          inputMode="tel"
                          autoComplete="off"
                          placeholder="+61412345678 or 102"
                          value={n.number}
                          aria-invalid={e.number ? true : undefined}
                          aria-describedby={desc('number', looksWrong ? `${id}-${i}-number-hint` : undefined)}
                          onChange={(ev) => update(i, { number: ev.target.value })}
                        />
                      </div>
                      {showDelay && (
                        <div className="w-[4.5rem] shrink-0">
                          <label htmlFor={`${id}-${i}-delay`} className="sr-only">
                            Delay of number {i + 1} (s)
                          </label>
                          <input
                            id={`${id}-${i}-delay`}
                            type="number"
                            inputMode="numeric"
                            min={DELAY.min}
                            max={DELAY.max}
                            placeholder={String(DELAY.dflt)}
                            className={`input ${e.delay ? 'input-error' : ''}`}
                            value={n.delay ?? ''}
                            aria-invalid={e.delay ? true : undefined}
                            aria-describedby={desc('delay')}
                            onChange={(ev) => update(i, { delay: ev.target.value === '' ? undefined : Number(ev.target.value) })}
                          />
                        </div>
                      )}
                      <div className="w-[4.5rem] shrink-0">
                        <label htmlFor={`${id}-${i}-timeout`} className="sr-only">
                          Ring time of number {i + 1} (s)
                        </label>
                        <input
                          id={`${id}-${i}-timeout`}
                          type="number"
                          inputMode="numeric"
                          min={RING.min}
                          max={RING.max}
                          placeholder={String(RING.dflt)}
                          className={`input ${e.timeout ? 'input-error' : ''}`}
                          value={n.timeout ?? ''}
                          aria-invalid={e.timeout ? true : undefined}
                          aria-describedby={desc('timeout')}
                          onChange={(ev) => update(i, { timeout: ev.target.value === '' ? undefined : Number(ev.target.value) })}
                        />
                      </div>
                      <span className="w-16 shrink-0 text-xs text-slate-500" data-testid={`follow-me-when-${i}`}>
                        {from}–{to} s
                      </span>
                      <div className="flex w-[5.25rem] shrink-0 justify-end">
                        <button id={`${id}-${i}-up`} type="button" className="btn btn-ghost btn-sm" aria-label={`Move number ${i + 1} up`} disabled={i === 0} onClick={() => move(i, -1)}>
                          ↑
                        </button>
                        <button id={`${id}-${i}-down`} type="button" className="btn btn-ghost btn-sm" aria-label={`Move number ${i + 1} down`} disabled={i === numbers.length - 1} onClick={() => move(i, 1)}>
                          ↓
                        </button>
                        <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove number ${i + 1}`} onClick={() => remove(i)}>
                          ✕
                        </button>
                      </div>
                    </div>
                    {looksWrong && (
                      <p id={`${id}-${i}-number-hint`} className="ml-7 mt-1 text-xs text-amber-700">
                        Looks wrong: a number is 2–20 digits, * or #, optionally after a +.
                      </p>
                    )}
                    {(['number', 'delay', 'timeout'] as const).map(
                      (f) =>
                        e[f] && (
                          <p key={f} id={`${id}-${i}-${f}-error`} role="alert" className="ml-7 mt-1 text-xs text-red-600">
                            {f === 'number' ? 'Number' : f === 'delay' ? 'Delay' : 'Ring time'}: {e[f]}
                          </p>
                        ),
                    )}
                    {whole && (
                      <p id={`${id}-${i}-error`} role="alert" className="ml-7 mt-1 text-xs text-red-600">
                        {whole}
                      </p>
                    )}
                  </li>
                );
              })}
            </ol>
            <div className="flex flex-wrap items-center gap-2">
              <button id={`${id}-add`} type="button" className="btn btn-sm" disabled={full} onClick={add}>
                Add number
              </button>
              {full && <span className="text-xs text-slate-500">At most {FOLLOW_ME_MAX} numbers.</span>}
            </div>
            {listError ? (
              <p id={`${id}-numbers-error`} role="alert" className="mt-1 text-xs text-red-600">
                {listError}
              </p>
            ) : (
              <p id={`${id}-numbers-help`} className="mt-1 text-xs text-slate-500">
                A number outside (2–20 digits, * or #, optionally after a +; spaces are dropped) is called through the outbound routes with this extension’s permissions;
                another extension’s number rings its phones. {showDelay ? `Delay ${DELAY.min}–${DELAY.max} s, ring` : 'Ring'} time {RING.min}–{RING.max} s, at most{' '}
                {FOLLOW_ME_MAX} numbers.
              </p>
            )}
          </div>
        </>
      )}
    </fieldset>
  );
}
