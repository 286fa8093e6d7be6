// The subset of JSON Schema node configs use (describe()'s config schema): objects, strings
// (enum, format, pattern), numbers, integers, booleans, arrays of those and of objects,
// oneOf/anyOf of consts as labelled choices. The server validates fully on validate/publish;
// the checks here give feedback while typing.
import type { JsonSchema } from '../../api/types';

export function schemaType(s: JsonSchema): string | undefined {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== 'null');
  if (s.type) return s.type;
  if (s.properties) return 'object';
  if (s.enum) return typeof s.enum[0] === 'number' ? 'number' : 'string';
  if (choices(s)) return typeof choices(s)![0].value === 'number' ? 'number' : 'string';
  return undefined;
}

/** Labelled choices from `enum` or from a `oneOf`/`anyOf` of `const`s. */
export function choices(s: JsonSchema): { value: unknown; label: string }[] | undefined {
  if (s.enum) return s.enum.map((v) => ({ value: v, label: String(v) }));
  const alts = s.oneOf ?? s.anyOf;
  if (alts && alts.length > 0 && alts.every((a) => 'const' in a)) {
    return alts.map((a) => ({ value: a.const, label: a.title ?? String(a.const) }));
  }
  return undefined;
}

/**
 * The value a new node starts with: the schema's defaults, recursively. A property without a
 * `default` is left out, booleans included: the node's own default applies (the voicemail
 * node plays the greeting unless `play_greeting` is false, so inventing `false` here would
 * change what the node does).
 */
export function defaultsFromSchema(s: JsonSchema): unknown {
  if (s.default !== undefined) return structuredClone(s.default);
  const t = schemaType(s);
  if (t === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, p] of Object.entries(s.properties ?? {})) {
      const v = defaultsFromSchema(p);
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
  if (t === 'array') return s.minItems && s.items ? Array.from({ length: s.minItems }, () => defaultsFromSchema(s.items!)) : [];
  return undefined;
}

/** Problems with a value, keyed by dotted path ("rules.0.start"); empty when it looks valid. */
export function checkValue(s: JsonSchema, v: unknown, path = ''): Record<string, string> {
  const errs: Record<string, string> = {};
  const t = schemaType(s);
  const at = (p: string) => (path ? `${path}.${p}` : p);
  if (v === undefined || v === null || v === '') return errs;
  const ch = choices(s);
  if (ch && !ch.some((c) => c.value === v)) {
    errs[path] = 'Pick one of the choices.';
    return errs;
  }
  switch (t) {
    case 'object': {
      if (typeof v !== 'object' || Array.isArray(v)) {
        errs[path] = 'Expected an object.';
        break;
      }
      const o = v as Record<string, unknown>;
      for (const r of s.required ?? []) {
        if (o[r] === undefined || o[r] === null || o[r] === '') errs[at(r)] = 'Required.';
      }
      for (const [k, p] of Object.entries(s.properties ?? {})) Object.assign(errs, checkValue(p, o[k], at(k)));
      const values = mapValues(s);
      if (values) for (const [k, x] of Object.entries(o)) Object.assign(errs, checkValue(values, x, at(k)));
      break;
    }
    case 'array': {
      if (!Array.isArray(v)) {
        errs[path] = 'Expected a list.';
        break;
      }
      if (s.minItems !== undefined && v.length < s.minItems) errs[path] = `At least ${s.minItems}.`;
      if (s.maxItems !== undefined && v.length > s.maxItems) errs[path] = `At most ${s.maxItems}.`;
      if (s.items) v.forEach((item, i) => Object.assign(errs, checkValue(s.items!, item, at(String(i)))));
      break;
    }
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || Number.isNaN(v)) {
        errs[path] = 'Expected a number.';
        break;
      }
      if (t === 'integer' && !Number.isInteger(v)) errs[path] = 'Expected a whole number.';
      else if (s.minimum !== undefined && v < s.minimum) errs[path] = `At least ${s.minimum}.`;
      else if (s.maximum !== undefined && v > s.maximum) errs[path] = `At most ${s.maximum}.`;
      break;
    }
    case 'string': {
      if (typeof v !== 'string') {
        errs[path] = 'Expected text.';
        break;
      }
      if (s.minLength !== undefined && v.length < s.minLength) errs[path] = `At least ${s.minLength} characters.`;
      else if (s.maxLength !== undefined && v.length > s.maxLength) errs[path] = `At most ${s.maxLength} characters.`;
      else if (s.pattern) {
        let re: RegExp | null = null;
        try {
          re = new RegExp(s.pattern, 'u');
        } catch {
          re = null;
        }
        if (re && !re.test(v)) errs[path] = 'Does not have the expected form.';
      }
      break;
    }
    case 'boolean':
      if (typeof v !== 'boolean') errs[path] = 'Expected yes or no.';
      break;
  }
  return errs;
}

/** A string property that names a prompt of the library (played by name). */
export function isPromptField(key: string, s: JsonSchema): boolean {
  if (s['x-widget'] === 'prompt') return true;
  return schemaType(s) === 'string' && !s.enum && /(^|_)prompt$/.test(key);
}

/** The schema of a map's values (`additionalProperties: {…}` and no fixed properties). */
export function mapValues(s: JsonSchema): JsonSchema | undefined {
  if (schemaType(s) !== 'object' || Object.keys(s.properties ?? {}).length > 0) return undefined;
  return s.additionalProperties && typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
}

export function humanize(key: string): string {
  const s = key.replace(/[_-]+/g, ' ').trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}
