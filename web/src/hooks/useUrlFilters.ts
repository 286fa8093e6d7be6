// A list page's filters kept in the URL (so a filtered view can be linked and survives a
// reload): the applied filters and page offset read from the query string, a draft the form
// edits, and apply / clear / page actions that write the query string back.
import { useState } from 'react';
import { useSearchParams } from 'react-router';

export function useUrlFilters<K extends string>(names: readonly K[]) {
  const [params, setParams] = useSearchParams();
  const filters = Object.fromEntries(names.map((n) => [n, params.get(n) ?? ''])) as Record<K, string>;
  const offset = Number(params.get('offset') ?? 0) || 0;
  const [draft, setDraft] = useState(filters);
  const apply = (e: React.FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(draft)) if (v) next.set(k, v as string);
    setParams(next);
  };
  const clear = () => {
    setDraft(Object.fromEntries(names.map((n) => [n, ''])) as Record<K, string>);
    setParams({});
  };
  const page = (o: number) => {
    const next = new URLSearchParams(params);
    next.set('offset', String(Math.max(0, o)));
    setParams(next);
  };
  return { filters, offset, draft, setDraft, apply, clear, page };
}
