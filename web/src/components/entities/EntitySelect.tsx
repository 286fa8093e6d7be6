// The searchable entity selector of the flow editor: "New …" always on top,
// each entity with its status, keyboard driven (a WAI-ARIA combobox).
import { useId, useMemo, useRef, useState } from 'react';
import { ENTITY_KINDS, entityStatus, type AnyEntity, type EntityType } from '../../api/entities';
import { useLive } from '../../api/live';
import { useEntities } from '../../api/queries';
import type { Id } from '../../api/types';
import { StatusDot } from '../common/ui';

export function EntitySelect({
  type,
  value,
  onSelect,
  onNew,
  onEdit,
  label,
}: {
  type: EntityType;
  value: Id | null | undefined;
  onSelect: (e: AnyEntity) => void;
  onNew: () => void;
  onEdit?: () => void;
  label?: string;
}) {
  const kind = ENTITY_KINDS[type];
  const list = useEntities(type);
  const regs = useLive((s) => s.registrations);
  const trunks = useLive((s) => s.trunks);
  const synced = useLive((s) => s.synced);
  const [open, setOpen] = useState(false);
  const [query, setQuery] = useState('');
  const [active, setActive] = useState(0);
  const id = useId();
  const inputRef = useRef<HTMLInputElement>(null);

  const items = (list.data ?? []) as AnyEntity[];
  const selected = items.find((e) => e.id === value);
  const title = (e: AnyEntity) => (kind.title as (x: AnyEntity) => string)(e);
  const subtitle = (e: AnyEntity) => (kind.subtitle as ((x: AnyEntity) => string | undefined) | undefined)?.(e);
  const filtered = useMemo(() => {
    const q = query.trim().toLowerCase();
    return q ? items.filter((e) => `${title(e)} ${subtitle(e) ?? ''}`.toLowerCase().includes(q)) : items;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [items, query]);
  // option 0 is "New …"
  const count = filtered.length + 1;
  const status = (e: AnyEntity) =>
    entityStatus(type, e, {
      registrations: synced ? (regs[String(e.id)] ?? 0) : undefined,
      trunk: trunks[String(e.id)]?.status,
    });

  const choose = (i: number) => {
    setOpen(false);
    setQuery('');
    if (i === 0) onNew();
    else onSelect(filtered[i - 1]);
  };

  const onKey = (e: React.KeyboardEvent) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      setOpen(true);
      setActive((a) => (a + 1) % count);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setOpen(true);
      setActive((a) => (a - 1 + count) % count);
    } else if (e.key === 'Enter' && open) {
      e.preventDefault();
      choose(active);
    } else if (e.key === 'Escape' && open) {
      e.stopPropagation();
      setOpen(false);
    }
  };

  const inputLabel = label ?? kind.singular.charAt(0).toUpperCase() + kind.singular.slice(1);
  return (
    <div className="relative mb-3">
      <label htmlFor={`${id}-input`} className="label">
        {inputLabel}
      </label>
      <div className="flex items-center gap-1">
        <input
          ref={inputRef}
          id={`${id}-input`}
          role="combobox"
          aria-expanded={open}
          aria-controls={`${id}-list`}
          aria-autocomplete="list"
          aria-activedescendant={open ? `${id}-opt-${active}` : undefined}
          className="input"
          placeholder={selected ? title(selected) : `Choose or create ${withArticle(kind.singular)}…`}
          value={open ? query : selected ? title(selected) : ''}
          onFocus={() => {
            setOpen(true);
            setActive(0);
          }}
          onBlur={() => setTimeout(() => setOpen(false), 150)}
          onChange={(e) => {
            setQuery(e.target.value);
            setOpen(true);
            setActive(e.target.value ? 1 : 0);
          }}
          onKeyDown={onKey}
        />
        {selected && onEdit && (
          <button type="button" className="btn btn-ghost btn-sm" aria-label={`Edit ${title(selected)}`} title="Edit" onClick={onEdit}>
            ✎
          </button>
        )}
      </div>
      {selected && (
        <div className="mt-1">
          <StatusDot status={status(selected)} />
        </div>
      )}
      {open && (
        <ul id={`${id}-list`} role="listbox" aria-label={kind.plural} className="absolute z-20 mt-1 max-h-64 w-full overflow-y-auto rounded-md border border-slate-200 bg-white py-1 text-sm shadow-lg">
          <li
            id={`${id}-opt-0`}
            role="option"
            aria-selected={active === 0}
            className={`cursor-pointer px-3 py-1.5 font-medium text-indigo-700 ${active === 0 ? 'bg-indigo-50' : ''}`}
            onMouseDown={(e) => {
              e.preventDefault();
              choose(0);
            }}
            onMouseEnter={() => setActive(0)}
          >
            {kind.newLabel}
          </li>
          {list.isLoading && <li className="px-3 py-1.5 text-slate-500">Loading…</li>}
          {filtered.map((e, i) => (
            <li
              key={e.id}
              id={`${id}-opt-${i + 1}`}
              role="option"
              aria-selected={active === i + 1}
              className={`flex cursor-pointer items-center justify-between gap-2 px-3 py-1.5 ${active === i + 1 ? 'bg-indigo-50' : ''} ${e.id === value ? 'font-semibold' : ''}`}
              onMouseDown={(ev) => {
                ev.preventDefault();
                choose(i + 1);
              }}
              onMouseEnter={() => setActive(i + 1)}
            >
              <span className="min-w-0 truncate">
                {title(e)}
                {subtitle(e) && <span className="ml-1 text-xs text-slate-500">{subtitle(e)}</span>}
              </span>
              <StatusDot status={status(e)} />
            </li>
          ))}
          {!list.isLoading && filtered.length === 0 && <li className="px-3 py-1.5 text-slate-500">No match</li>}
        </ul>
      )}
    </div>
  );
}

/** "an extension", "a ring group", "an IVR menu": the article English puts before the word. */
export function withArticle(word: string): string {
  // initialisms read letter by letter: "an IVR menu", "a SIP trunk"
  const initialism = /^[A-Z]{2,}/.exec(word)?.[0];
  const vowelSound = initialism ? /^[AEFHILMNORSX]/.test(initialism) : /^[aeiou]/i.test(word);
  return `${vowelSound ? 'an' : 'a'} ${word}`;
}
