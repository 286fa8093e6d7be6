// The parts of the extension and trunk forms that concern the outside world: what an
// extension may call out to (its call classes, caller IDs and toll-fraud limits), and a
// trunk's keep-alive, outbound proxy and E.164 numbering. Rendered by EntityForm.
import type { CallClass } from '../../api/types';
import { NumberInput, TextInput } from '../common/ui';
import { toE164 } from '../routes/patterns';

type Values = Record<string, unknown>;
interface FP {
  values: Values;
  set: (k: string, v: unknown) => void;
  errors: Record<string, string>;
  idp: string;
}

const str = (v: unknown) => (v === null || v === undefined ? '' : String(v));
const num = (v: unknown) => (typeof v === 'number' ? v : null);

/** The classes of outbound numbers, in the order they grow riskier. */
export const CALL_CLASSES: { value: CallClass; label: string; help: string }[] = [
  { value: 'local', label: 'Local', help: 'numbers in the local area' },
  { value: 'national', label: 'National', help: 'numbers in the country, mobiles included' },
  { value: 'international', label: 'International', help: 'other countries: the usual target of toll fraud' },
  { value: 'premium', label: 'Premium', help: 'premium-rate numbers, charged per minute' },
];

/** The error a 422 names on the class list, or on one entry of it (`call_classes[1]`). */
function classesError(e: Record<string, string>): string | undefined {
  const k = Object.keys(e).find((f) => f === 'call_classes' || f.startsWith('call_classes.'));
  return k ? e[k] : undefined;
}

/** An extension's calls out: caller IDs, permission classes, limits. */
export function ExtensionOutboundFields({ values: v, set, errors: e, idp }: FP) {
  const classes = (v.call_classes as CallClass[] | undefined) ?? [];
  const cerr = classesError(e);
  const toggle = (c: CallClass, on: boolean) =>
    set('call_classes', on ? CALL_CLASSES.map((x) => x.value).filter((x) => x === c || classes.includes(x)) : classes.filter((x) => x !== c));
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-semibold">Calling out</legend>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <TextInput id={`${idp}-outbound_caller_id_name`} label="Outbound caller ID name" value={str(v.outbound_caller_id_name)} error={e.outbound_caller_id_name}
          help="Shown to the people it calls (a route or trunk may present its own)" onChange={(x) => set('outbound_caller_id_name', x)} />
        <TextInput id={`${idp}-outbound_caller_id_num`} label="Outbound caller ID number" placeholder="+61290000001" value={str(v.outbound_caller_id_num)} error={e.outbound_caller_id_num}
          help="Digits, optionally with a leading +. Empty: the route's, else the extension number" onChange={(x) => set('outbound_caller_id_num', x)} />
        <TextInput id={`${idp}-emergency_caller_id_num`} label="Emergency caller ID number" placeholder="+61290000009" value={str(v.emergency_caller_id_num)} error={e.emergency_caller_id_num}
          help="The callback number emergency services get (its location's line)" onChange={(x) => set('emergency_caller_id_num', x)} />
      </div>
      <div role="group" aria-labelledby={`${idp}-classes-label`} aria-describedby={cerr ? `${idp}-classes-error` : `${idp}-classes-help`} className="mb-3">
        <p id={`${idp}-classes-label`} className="label">
          May call
        </p>
        <label className="mb-1 flex items-center gap-2 text-sm text-slate-500">
          <input type="checkbox" checked disabled className="h-4 w-4" />
          Internal and emergency numbers (always)
        </label>
        {CALL_CLASSES.map((c) => (
          <label key={c.value} className="mb-1 flex items-center gap-2 text-sm text-slate-700">
            <input type="checkbox" className="h-4 w-4 rounded border-slate-300 text-indigo-600" checked={classes.includes(c.value)} onChange={(ev) => toggle(c.value, ev.target.checked)} />
            {c.label}
            <span className="text-xs text-slate-500">— {c.help}</span>
          </label>
        ))}
        {cerr ? (
          <p id={`${idp}-classes-error`} role="alert" className="mt-1 text-xs text-red-600">
            {cerr}
          </p>
        ) : (
          <p id={`${idp}-classes-help`} className="mt-1 text-xs text-slate-500">
            A call to a number of a class not ticked is refused and logged. Leave international and premium off unless this person needs them.
          </p>
        )}
      </div>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
        <NumberInput id={`${idp}-max_outbound_calls`} label="Outbound calls at once" min={0} max={100} value={num(v.max_outbound_calls)} error={e.max_outbound_calls}
          help="0 = no outbound calls (emergency calls still go)" onChange={(x) => set('max_outbound_calls', x)} />
        <NumberInput id={`${idp}-daily_outbound_minutes`} label="Outbound minutes a day" min={0} max={100000} value={num(v.daily_outbound_minutes)} error={e.daily_outbound_minutes}
          help="0 = no cap. Past the cap calls out are refused until midnight UTC" onChange={(x) => set('daily_outbound_minutes', x)} />
      </div>
    </fieldset>
  );
}

/** A trunk's OPTIONS keep-alive and outbound proxy. */
export function TrunkConnectionFields({ values: v, set, errors: e, idp }: FP) {
  return (
    <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
      <TextInput id={`${idp}-outbound_proxy`} label="Outbound proxy" placeholder="sip:edge.carrier.example;lr" value={str(v.outbound_proxy)} error={e.outbound_proxy}
        help="Optional: host[:port] or a sip:/sips: URI requests go through first. Empty: straight to the host" onChange={(x) => set('outbound_proxy', x)} />
      <NumberInput id={`${idp}-options_interval`} label="Keep-alive every (s)" min={0} max={3600} value={num(v.options_interval)} error={e.options_interval}
        help="An OPTIONS ping; a trunk that stops answering is down and calls skip it. 5–3600, or 0 for none" onChange={(x) => set('options_interval', x)} />
    </div>
  );
}

/**
 * How the carrier writes numbers, so the ones it sends become E.164 (+ and country code):
 * with an example of each rule, computed as the SIP stack will.
 */
export function TrunkNumberingFields({ values: v, set, errors: e, idp }: FP) {
  const cc = str(v.country_code).trim();
  const np = str(v.national_prefix).trim();
  const ip = str(v.international_prefix).trim();
  const rules = { country_code: cc, national_prefix: np, international_prefix: ip };
  const examples: [string, string][] = [];
  if (cc && np) examples.push([`${np}212345678`, toE164(`${np}212345678`, rules)]);
  if (ip) examples.push([`${ip}442079460000`, toE164(`${ip}442079460000`, rules)]);
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-semibold">Numbers from this carrier</legend>
      <p className="mb-2 text-xs text-slate-500">
        Numbers the carrier sends (the number dialled, the caller) are turned into E.164, such as +61212345678, before they are matched to your numbers. Leave empty when it
        already sends E.164.
      </p>
      <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <TextInput id={`${idp}-country_code`} label="Country code" placeholder="61" value={str(v.country_code)} error={e.country_code} help="1–3 digits, no +" onChange={(x) => set('country_code', x)} />
        <TextInput id={`${idp}-national_prefix`} label="National prefix" placeholder="0" value={str(v.national_prefix)} error={e.national_prefix}
          help={np && !cc ? 'Needs the country code' : 'Trunk prefix, e.g. 0'} onChange={(x) => set('national_prefix', x)} />
        <TextInput id={`${idp}-international_prefix`} label="International prefix" placeholder="0011" value={str(v.international_prefix)} error={e.international_prefix}
          help="e.g. 00 or 011" onChange={(x) => set('international_prefix', x)} />
      </div>
      {examples.length > 0 && (
        <ul aria-label="E.164 examples" className="text-xs text-slate-600">
          {examples.map(([from, to]) => (
            <li key={from}>
              <span className="font-mono">{from}</span> becomes <span className="font-mono">{to}</span>
            </li>
          ))}
        </ul>
      )}
    </fieldset>
  );
}
