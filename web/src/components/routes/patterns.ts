// What an outbound route's dialled-number pattern matches, in words and with an example
// number, for the live hint under each pattern field. The server checks patterns
// (host/api/src/route_patterns.rs) and the SIP stack matches them (host/call/src/routing.rs);
// this reads them the same way so the hint says what the server will do, but it only advises:
// a pattern is refused or taken by the server alone.
//
// A pattern is a prefix of 0-9 + * # (`9`: every number starting with 9), an Asterisk
// pattern after `_` matched against the whole number (X any digit, Z 1-9, N 2-9, [set], `.`
// one or more and `!` zero or more, each only last), or a regular expression after `^`
// matched against the whole number.

export type Elem = { set: string } | { rest: 'one' | 'zero' };

export type ParsedPattern =
  | { kind: 'prefix'; prefix: string }
  | { kind: 'asterisk'; elems: Elem[] }
  | { kind: 'regex'; re: RegExp | null };

const DIAL = /^[0-9+*#]$/;
const isDial = (c: string) => DIAL.test(c);
const range = (a: string, b: string) => Array.from({ length: b.charCodeAt(0) - a.charCodeAt(0) + 1 }, (_, i) => String.fromCharCode(a.charCodeAt(0) + i)).join('');
export const MAX_PREFIX = 32;
export const MAX_ASTERISK = 64;
export const MAX_REGEX = 256;

/** The pattern as the server stores it: trimmed, an Asterisk pattern in upper case. */
export function normalisePattern(s: string): string {
  const t = s.trim();
  return t.startsWith('_') ? t.toUpperCase() : t;
}

/** Reads a pattern; the error says what looks wrong, in words (the server has the last word). */
export function parsePattern(raw: string): { ok: true; pattern: ParsedPattern } | { ok: false; error: string } {
  const s = normalisePattern(raw);
  if (!s) return { ok: false, error: 'must not be empty' };
  if (s.startsWith('_')) {
    const r = asterisk(s.slice(1));
    return 'error' in r ? { ok: false, error: r.error } : { ok: true, pattern: { kind: 'asterisk', elems: r.elems } };
  }
  if (s.startsWith('^')) {
    if (s.length > MAX_REGEX) return { ok: false, error: `a regular expression is at most ${MAX_REGEX} characters` };
    let re: RegExp | null = null;
    try {
      // matched against the whole number, as the server does
      re = new RegExp(`^(?:${s})$`, 'u');
    } catch {
      // the server's regex syntax is not quite JavaScript's: it decides
      re = null;
    }
    return { ok: true, pattern: { kind: 'regex', re } };
  }
  if (s.length <= MAX_PREFIX && [...s].every(isDial)) return { ok: true, pattern: { kind: 'prefix', prefix: s } };
  return { ok: false, error: `must be a prefix of digits, +, * and # (at most ${MAX_PREFIX}), an Asterisk pattern starting with _ or a regular expression starting with ^` };
}

function asterisk(body: string): { elems: Elem[] } | { error: string } {
  if (body.length + 1 > MAX_ASTERISK) return { error: `an Asterisk pattern is at most ${MAX_ASTERISK} characters` };
  if (!body) return { error: '_ must be followed by the pattern (such as _NXXXXXX)' };
  const elems: Elem[] = [];
  const chars = [...body];
  const pos = (i: number) => i + 2;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === 'X') elems.push({ set: range('0', '9') });
    else if (c === 'Z') elems.push({ set: range('1', '9') });
    else if (c === 'N') elems.push({ set: range('2', '9') });
    else if (c === '.' || c === '!') {
      if (i + 1 !== chars.length) return { error: `'${c}' (at ${pos(i)}) must be the last character` };
      elems.push({ rest: c === '.' ? 'one' : 'zero' });
    } else if (c === '[') {
      const end = chars.indexOf(']', i + 1);
      if (end < 0) return { error: `'[' (at ${pos(i)}) is not closed` };
      const r = set(chars.slice(i + 1, end), pos(i));
      if ('error' in r) return r;
      elems.push({ set: r.set });
      i = end;
    } else if (c === ']') return { error: `']' (at ${pos(i)}) closes no '['` };
    else if (c === '-') return { error: `'-' (at ${pos(i)}) is only for a range inside [ ]` };
    else if (isDial(c)) elems.push({ set: c });
    else return { error: `'${c}' (at ${pos(i)}) is not part of an Asterisk pattern (0-9 X Z N [ ] - . ! + * #)` };
  }
  return { elems };
}

function set(inner: string[], at: number): { set: string } | { error: string } {
  if (inner.length === 0) return { error: `'[]' (at ${at}) is empty` };
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === '[') return { error: `'[' (at ${at}) is not closed before another '['` };
    if (inner[i + 1] === '-') {
      const hi = inner[i + 2];
      if (hi === undefined) return { error: `the range in '[' (at ${at}) has no end` };
      if (!/[0-9]/.test(c) || !/[0-9]/.test(hi)) return { error: `a range in '[' (at ${at}) must be between digits` };
      if (hi < c) return { error: `the range ${c}-${hi} in '[' (at ${at}) goes backwards` };
      out += range(c, hi);
      i += 2;
      continue;
    }
    if (c === '-') return { error: `a range in '[' (at ${at}) has no start` };
    if (!isDial(c)) return { error: `'${c}' in '[' (at ${at}) is not a digit, +, * or #` };
    out += c;
  }
  return { set: [...new Set(out)].sort().join('') };
}

/** Does `number` match the pattern, as the SIP stack matches it? `null`: cannot tell here. */
export function matches(p: ParsedPattern, number: string): boolean | null {
  switch (p.kind) {
    case 'prefix':
      return number.startsWith(p.prefix);
    case 'asterisk':
      return matchElems(p.elems, [...number]);
    case 'regex':
      return p.re ? p.re.test(number) : null;
  }
}

function matchElems(elems: Elem[], s: string[]): boolean {
  if (elems.length === 0) return s.length === 0;
  const [e, ...rest] = elems;
  if ('rest' in e) {
    for (let k = e.rest === 'one' ? 1 : 0; k <= s.length; k++) if (matchElems(rest, s.slice(k))) return true;
    return false;
  }
  return s.length > 0 && e.set.includes(s[0]) && matchElems(rest, s.slice(1));
}

// digits an example number is made of, so it reads like a number and not like 0000000
const FILL = '5550123456789';

/** A number the pattern matches (`null` for a regular expression: it is not guessed). */
export function exampleNumber(p: ParsedPattern): string | null {
  switch (p.kind) {
    case 'prefix':
      return `${p.prefix}${FILL.slice(0, Math.max(0, 10 - p.prefix.length))}`;
    case 'asterisk': {
      let out = '';
      p.elems.forEach((e, i) => {
        if ('rest' in e) out += FILL.slice(0, Math.max(e.rest === 'one' ? 1 : 0, 10 - out.length));
        else if (e.set.length === 1) out += e.set;
        else {
          const want = FILL[i % FILL.length];
          out += e.set.includes(want) ? want : (e.set.split('').find((c) => /[0-9]/.test(c) && c >= want) ?? e.set[0]);
        }
      });
      return out;
    }
    case 'regex':
      return null;
  }
}

function describeSet(set: string): string {
  if (set.length === 1) return set;
  if (set === range('0', '9')) return 'any digit';
  if (set === range('1', '9')) return '1-9';
  if (set === range('2', '9')) return '2-9';
  // runs of digits as ranges: 2345 → 2-5
  const parts: string[] = [];
  let i = 0;
  while (i < set.length) {
    let j = i;
    while (j + 1 < set.length && /[0-9]/.test(set[j + 1]) && set.charCodeAt(j + 1) === set.charCodeAt(j) + 1) j++;
    parts.push(j - i >= 2 ? `${set[i]}-${set[j]}` : set.slice(i, j + 1).split('').join(','));
    i = j + 1;
  }
  return `one of ${parts.join(',')}`;
}

/** What the pattern matches, in words: "numbers starting with 9", "exactly 10 characters: …". */
export function describePattern(p: ParsedPattern): string {
  switch (p.kind) {
    case 'prefix':
      return `every number starting with ${p.prefix}`;
    case 'regex':
      return p.re
        ? 'numbers the regular expression matches as a whole'
        : 'numbers the regular expression matches as a whole (it cannot be tried in the browser: the server checks it)';
    case 'asterisk': {
      const fixed = p.elems.filter((e) => 'set' in e) as { set: string }[];
      const last = p.elems.at(-1);
      // the literal start, then what follows
      let lit = 0;
      while (lit < fixed.length && fixed[lit].set.length === 1) lit++;
      const start = fixed.slice(0, lit).map((e) => e.set).join('');
      const more = fixed.slice(lit).map((e) => describeSet(e.set));
      const tail = last && 'rest' in last ? (last.rest === 'one' ? ', then one or more characters' : ', then anything or nothing') : '';
      const count = last && 'rest' in last ? `at least ${fixed.length + (last.rest === 'one' ? 1 : 0)}` : `exactly ${fixed.length}`;
      const body = start ? [`starting ${start}`, more.length ? `then ${compress(more)}` : ''].filter(Boolean).join(', ') : compress(more);
      return `${count} characters${body ? `: ${body}` : ''}${tail}`;
    }
  }
}

/** "any digit, any digit, any digit" → "3 × any digit" */
function compress(parts: string[]): string {
  const out: string[] = [];
  for (let i = 0; i < parts.length; ) {
    let j = i;
    while (j < parts.length && parts[j] === parts[i]) j++;
    out.push(j - i > 1 ? `${j - i} × ${parts[i]}` : parts[i]);
    i = j;
  }
  return out.join(', ');
}

/** A route's strip/prepend on a dialled number (host/call routing::manipulate). */
export function manipulate(number: string, strip: number, prepend: string): string {
  return `${prepend}${[...number].slice(Math.max(0, strip)).join('')}`;
}

/** A carrier's number as E.164, by the trunk's rules (host/call routing::Numbering::to_e164). */
export function toE164(number: string, rules: { country_code?: string | null; national_prefix?: string | null; international_prefix?: string | null }): string {
  const cc = (rules.country_code ?? '').trim();
  const np = (rules.national_prefix ?? '').trim();
  const ip = (rules.international_prefix ?? '').trim();
  if (number.startsWith('+')) return number;
  if (ip && number.startsWith(ip) && number.length > ip.length) return `+${number.slice(ip.length)}`;
  if (cc && np && number.startsWith(np) && number.length > np.length) return `+${cc}${number.slice(np.length)}`;
  return number;
}
