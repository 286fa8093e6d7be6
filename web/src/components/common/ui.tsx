// Small shared building blocks: labelled fields with their error, status dots, banners,
// dialogs. Every control gets a label (for=id) and its error via aria-describedby.
import { useEffect, useId, useRef, type ReactNode } from 'react';
import type { EntityStatus } from '../../api/entities';

export function Field({
  label,
  error,
  help,
  children,
  id,
  required,
  className = '',
}: {
  label: string;
  error?: string;
  help?: ReactNode;
  id: string;
  required?: boolean;
  className?: string;
  children: ReactNode;
}) {
  return (
    <div className={`mb-3 ${className}`}>
      <label htmlFor={id} className={`label ${required ? "after:ml-0.5 after:text-red-600 after:content-['*']" : ''}`}>
        {label}
      </label>
      {children}
      {help && !error && (
        <p id={`${id}-help`} className="mt-1 text-xs text-slate-500">
          {help}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} role="alert" className="mt-1 text-xs text-red-600">
          {error}
        </p>
      )}
    </div>
  );
}

/** Props that tie a control to its Field's error/help text. */
export function describedBy(id: string, error?: string, help?: unknown) {
  return {
    id,
    'aria-invalid': error ? true : undefined,
    'aria-describedby': error ? `${id}-error` : help ? `${id}-help` : undefined,
  } as const;
}

export function TextInput({
  id,
  label,
  value,
  onChange,
  error,
  help,
  type = 'text',
  required,
  placeholder,
  autoComplete,
  disabled,
  className,
}: {
  id: string;
  label: string;
  value: string | number | null | undefined;
  onChange: (v: string) => void;
  error?: string;
  help?: ReactNode;
  type?: string;
  required?: boolean;
  placeholder?: string;
  autoComplete?: string;
  disabled?: boolean;
  className?: string;
}) {
  return (
    <Field id={id} label={label} error={error} help={help} required={required} className={className}>
      <input
        {...describedBy(id, error, help)}
        className={`input ${error ? 'input-error' : ''}`}
        type={type}
        value={value ?? ''}
        required={required}
        placeholder={placeholder}
        autoComplete={autoComplete}
        disabled={disabled}
        onChange={(e) => onChange(e.target.value)}
      />
    </Field>
  );
}

export function NumberInput({
  id,
  label,
  value,
  onChange,
  error,
  help,
  min,
  max,
  required,
  disabled,
}: {
  id: string;
  label: string;
  value: number | null | undefined;
  onChange: (v: number | null) => void;
  error?: string;
  help?: ReactNode;
  min?: number;
  max?: number;
  required?: boolean;
  disabled?: boolean;
}) {
  return (
    <Field id={id} label={label} error={error} help={help} required={required}>
      <input
        {...describedBy(id, error, help)}
        className={`input ${error ? 'input-error' : ''}`}
        type="number"
        inputMode="numeric"
        disabled={disabled}
        min={min}
        max={max}
        value={value ?? ''}
        onChange={(e) => onChange(e.target.value === '' ? null : Number(e.target.value))}
      />
    </Field>
  );
}

export function Select({
  id,
  label,
  value,
  onChange,
  options,
  error,
  help,
  required,
  disabled,
}: {
  id: string;
  label: string;
  value: string | number | null | undefined;
  onChange: (v: string) => void;
  options: { value: string | number; label: string }[];
  error?: string;
  help?: ReactNode;
  required?: boolean;
  disabled?: boolean;
}) {
  return (
    <Field id={id} label={label} error={error} help={help} required={required}>
      <select
        {...describedBy(id, error, help)}
        disabled={disabled}
        className={`input ${error ? 'input-error' : ''}`}
        value={value ?? ''}
        onChange={(e) => onChange(e.target.value)}
      >
        {options.map((o) => (
          <option key={String(o.value)} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </Field>
  );
}

export function Checkbox({
  id,
  label,
  checked,
  onChange,
  error,
  help,
}: {
  id: string;
  label: string;
  checked: boolean;
  onChange: (v: boolean) => void;
  error?: string;
  help?: ReactNode;
}) {
  return (
    <div className="mb-3">
      <div className="flex items-center gap-2">
        <input
          {...describedBy(id, error, help)}
          type="checkbox"
          className="h-4 w-4 rounded border-slate-300 text-indigo-600 focus-visible:outline-2 focus-visible:outline-indigo-600"
          checked={checked}
          onChange={(e) => onChange(e.target.checked)}
        />
        <label htmlFor={id} className="text-sm text-slate-700">
          {label}
        </label>
      </div>
      {help && !error && (
        <p id={`${id}-help`} className="ml-6 mt-0.5 text-xs text-slate-500">
          {help}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} role="alert" className="ml-6 mt-0.5 text-xs text-red-600">
          {error}
        </p>
      )}
    </div>
  );
}

/** An on/off switch: a checkbox with the switch role, drawn as a toggle. */
export function Switch({
  id,
  label,
  checked,
  onChange,
  error,
  help,
}: {
  id: string;
  label: string;
  checked: boolean;
  onChange: (v: boolean) => void;
  error?: string;
  help?: ReactNode;
}) {
  return (
    <div className="mb-3">
      <div className="flex items-start gap-2">
        <span className="relative mt-0.5 inline-flex h-5 w-9 shrink-0">
          <input
            {...describedBy(id, error, help)}
            type="checkbox"
            role="switch"
            className="peer absolute inset-0 h-full w-full cursor-pointer appearance-none rounded-full bg-slate-300 transition-colors checked:bg-indigo-600 focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-600"
            checked={checked}
            onChange={(e) => onChange(e.target.checked)}
          />
          <span aria-hidden="true" className="pointer-events-none absolute left-0.5 top-0.5 h-4 w-4 rounded-full bg-white shadow transition-transform peer-checked:translate-x-4" />
        </span>
        <label htmlFor={id} className="text-sm text-slate-700">
          {label}
        </label>
      </div>
      {help && !error && (
        <p id={`${id}-help`} className="ml-11 mt-0.5 text-xs text-slate-500">
          {help}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} role="alert" className="ml-11 mt-0.5 text-xs text-red-600">
          {error}
        </p>
      )}
    </div>
  );
}

export function StatusDot({ status }: { status?: EntityStatus }) {
  if (!status) return null;
  const color = { ok: 'bg-emerald-500', warn: 'bg-amber-500', bad: 'bg-red-500', idle: 'bg-slate-300' }[status.tone];
  return (
    <span className="inline-flex items-center gap-1 text-xs text-slate-600">
      <span className={`inline-block h-2 w-2 rounded-full ${color}`} aria-hidden="true" />
      {status.text}
    </span>
  );
}

export function ErrorBanner({ error, title }: { error?: string | null; title?: string }) {
  if (!error) return null;
  return (
    <div role="alert" className="mb-3 rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {title && <strong className="mr-1">{title}</strong>}
      {error}
    </div>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <div role="status" className="flex items-center gap-2 p-4 text-sm text-slate-500">
      <span className="h-4 w-4 animate-spin rounded-full border-2 border-slate-300 border-t-indigo-600" aria-hidden="true" />
      {label}
    </div>
  );
}

/**
 * A modal dialog: focus moves into it, Escape closes it, focus returns to where it was.
 * `side` makes it a drawer on the right (the editor's inline creation uses it).
 */
export function Dialog({
  title,
  onClose,
  children,
  side = false,
  wide = false,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  side?: boolean;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useId();
  useEffect(() => {
    const prev = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>('input,select,textarea,button:not([data-close])');
    (first ?? el)?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        onClose();
      }
      if (e.key === 'Tab' && el) {
        const f = Array.from(el.querySelectorAll<HTMLElement>('a[href],button:not([disabled]),input:not([disabled]),select,textarea,[tabindex="0"]'));
        if (f.length === 0) return;
        const a = f[0];
        const z = f[f.length - 1];
        if (e.shiftKey && document.activeElement === a) {
          e.preventDefault();
          z.focus();
        } else if (!e.shiftKey && document.activeElement === z) {
          e.preventDefault();
          a.focus();
        }
      }
    };
    el?.addEventListener('keydown', onKey);
    return () => {
      el?.removeEventListener('keydown', onKey);
      prev?.focus?.();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return (
    <div className="fixed inset-0 z-50 flex bg-slate-900/40" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div
        ref={ref}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        tabIndex={-1}
        className={
          side
            ? 'ml-auto flex h-full w-full max-w-xl flex-col bg-white shadow-xl'
            : `m-auto flex max-h-[90vh] w-full ${wide ? 'max-w-3xl' : 'max-w-lg'} flex-col rounded-lg bg-white shadow-xl`
        }
      >
        <div className="flex items-center justify-between border-b border-slate-200 px-4 py-3">
          <h2 id={titleId} className="text-base font-semibold">
            {title}
          </h2>
          <button type="button" data-close className="btn btn-ghost btn-sm" onClick={onClose} aria-label="Close">
            ✕
          </button>
        </div>
        <div className="overflow-y-auto p-4">{children}</div>
      </div>
    </div>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-center justify-between gap-2">
      <h1 className="text-xl font-semibold">{title}</h1>
      <div className="flex flex-wrap items-center gap-2">{children}</div>
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="p-6 text-center text-sm text-slate-500">{children}</p>;
}

/** Who did something, as the audit records it (`admin:alice`, `token:ci`), in words. */
export function actorWords(actor: string): string {
  const [kind, ...rest] = actor.split(':');
  const name = rest.join(':');
  if (!name) return actor;
  if (kind === 'admin') return name;
  if (kind === 'token') return `the API token “${name}”`;
  return actor;
}

export function formatDate(s?: string | null): string {
  if (!s) return '—';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString();
}

export function formatDuration(sec?: number | null): string {
  if (sec === null || sec === undefined) return '—';
  const m = Math.floor(sec / 60);
  const s = Math.floor(sec % 60);
  return m > 0 ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`;
}

/** A table's header row; `actions` adds the (visually hidden) header of a buttons column. */
export function TableHead({ columns, actions = true }: { columns: string[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th key={c} scope="col">
            {c}
          </th>
        ))}
        {actions && (
          <th scope="col">
            <span className="sr-only">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  );
}

/** The red "Delete" of a table row; `what` names the row for screen readers. */
export function DeleteButton({ what, onClick, label = 'Delete' }: { what: string; onClick: () => void; label?: string }) {
  return (
    <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={onClick} aria-label={`${label} ${what}`}>
      {label}
    </button>
  );
}

/** Marks a call leg whose media is encrypted (SRTP); nothing for plain RTP. */
export function SrtpBadge({ suite }: { suite?: string | null }) {
  if (!suite) return null;
  return (
    <span className="ml-1 rounded bg-emerald-100 px-1 text-xs text-emerald-800" title={`Media encrypted: ${suite}`} aria-label={`media encrypted (${suite})`}>
      SRTP
    </span>
  );
}
