import { describe, expect, it } from 'vitest';
import { describePattern, exampleNumber, manipulate, matches, normalisePattern, parsePattern, toE164, type ParsedPattern } from './patterns';

const ok = (s: string): ParsedPattern => {
  const r = parsePattern(s);
  if (!r.ok) throw new Error(`${s}: ${r.error}`);
  return r.pattern;
};
const err = (s: string): string => {
  const r = parsePattern(s);
  if (r.ok) throw new Error(`${s} was taken`);
  return r.error;
};

describe('route patterns', () => {
  it('reads the three kinds as the server does', () => {
    expect(ok('9')).toEqual({ kind: 'prefix', prefix: '9' });
    expect(ok(' +44 ')).toEqual({ kind: 'prefix', prefix: '+44' });
    expect(normalisePattern(' _nxx ')).toBe('_NXX');
    const a = ok('_nxx[2-4]x.');
    expect(a.kind === 'asterisk' && a.elems.length).toBe(6);
    expect(a.kind === 'asterisk' && a.elems[3]).toEqual({ set: '234' });
    expect(ok('_[13-5#+]!')).toEqual({ kind: 'asterisk', elems: [{ set: '#+1345' }, { rest: 'zero' }] });
    expect(ok('^\\+61[0-9]{9}$').kind).toBe('regex');
  });

  it('says what is wrong with a malformed one, in the server’s words', () => {
    expect(err('')).toMatch(/empty/);
    expect(err('9a')).toMatch(/prefix/);
    expect(err('1'.repeat(33))).toMatch(/prefix/);
    expect(err('_')).toMatch(/followed/);
    expect(err('_9[2-5')).toMatch(/not closed/);
    expect(err('_9]')).toMatch(/closes no/);
    expect(err('_9[]')).toMatch(/empty/);
    expect(err('_9[5-3]')).toMatch(/backwards/);
    expect(err('_9[a-c]')).toMatch(/between digits/);
    expect(err('_9[2-]')).toMatch(/no end/);
    expect(err('_9[-2]')).toMatch(/no start/);
    expect(err('_9.X')).toMatch(/last/);
    expect(err('_NXX-XXXX')).toMatch(/range/);
    expect(err('_9Y')).toBe("'Y' (at 3) is not part of an Asterisk pattern (0-9 X Z N [ ] - . ! + * #)");
    expect(err(`^${'9'.repeat(300)}`)).toMatch(/at most/);
  });

  it('matches whole numbers as the SIP stack does', () => {
    expect(matches(ok('9'), '90290000000')).toBe(true);
    expect(matches(ok('9'), '80290000000')).toBe(false);
    const nanp = ok('_NXXNXXXXXX');
    expect(matches(nanp, '2125551234')).toBe(true);
    expect(matches(nanp, '1125551234')).toBe(false);
    expect(matches(nanp, '21255512345')).toBe(false);
    expect(matches(ok('_00.'), '0044207946')).toBe(true);
    expect(matches(ok('_00.'), '00')).toBe(false);
    expect(matches(ok('_00!'), '00')).toBe(true);
    expect(matches(ok('_1[2-5]XX'), '1399')).toBe(true);
    expect(matches(ok('_1[2-5]XX'), '1699')).toBe(false);
    expect(matches(ok('^\\+44[0-9]{10}$'), '+442079460000')).toBe(true);
    expect(matches(ok('^\\+44'), '+442079460000')).toBe(false);
    expect(matches(ok('^\\+44.*'), '+442079460000')).toBe(true);
  });

  it('gives an example each pattern matches, and says what it takes', () => {
    for (const p of ['9', '+44', '_NXXNXXXXXX', '_0[2-9]XXXXXXXX', '_00.', '_00!', '_1[2-5]XX', '_Z', '_[#*]X.']) {
      const parsed = ok(p);
      const ex = exampleNumber(parsed);
      expect(ex, p).not.toBeNull();
      expect(matches(parsed, ex!), `${p} → ${ex}`).toBe(true);
    }
    expect(exampleNumber(ok('^1'))).toBeNull();
    expect(describePattern(ok('9'))).toBe('every number starting with 9');
    expect(describePattern(ok('_0[2-9]XXXXXXXX'))).toBe('exactly 10 characters: starting 0, then 2-9, 8 × any digit');
    expect(describePattern(ok('_0011.'))).toBe('at least 5 characters: starting 0011, then one or more characters');
    expect(describePattern(ok('_NXX'))).toBe('exactly 3 characters: 2-9, 2 × any digit');
    expect(describePattern(ok('^\\+61'))).toMatch(/regular expression/);
  });

  it('strips, prepends and makes E.164 as the server does', () => {
    expect(manipulate('0290000000', 1, '+61')).toBe('+61290000000');
    expect(manipulate('9', 3, '')).toBe('');
    const au = { country_code: '61', national_prefix: '0', international_prefix: '0011' };
    expect(toE164('0290000000', au)).toBe('+61290000000');
    expect(toE164('0011442079460000', au)).toBe('+442079460000');
    expect(toE164('+61290000000', au)).toBe('+61290000000');
    expect(toE164('61290000000', au)).toBe('61290000000');
    expect(toE164('0290000000', {})).toBe('0290000000');
    expect(toE164('0', au)).toBe('0');
  });
});
