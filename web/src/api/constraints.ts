// The entity forms' hints and required markers, read from the OpenAPI document the server
// serves (constraints.gen.ts, generated from web/openapi.json by scripts/gen-api.mjs), so a
// form cannot promise what the server refuses: "8–128 characters", "4–12 digits", the
// fields a create needs (by trunk type, too).
import type { EntityType } from './entities';
import { CONSTRAINTS } from './constraints.gen';

type SchemaName = keyof typeof CONSTRAINTS;
interface Bounds {
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
}
interface Create {
  fields: Record<string, Bounds>;
  required: readonly string[];
  requiredWhen: readonly { field: string; value: string; required: readonly string[] }[];
}

/** The create body each entity's form fills. */
export const CREATE_SCHEMA: Record<EntityType, SchemaName> = {
  extension: 'ExtensionInput',
  trunk: 'TrunkInput',
  inbound_number: 'InboundNumberInput',
  voicemail_box: 'VoicemailBoxInput',
  ring_group: 'RingGroupInput',
  ivr_menu: 'IvrMenuInput',
  time_switch: 'TimeSwitchInput',
  conference_bridge: 'ConferenceInput',
};

const create = (type: EntityType): Create => CONSTRAINTS[CREATE_SCHEMA[type]] as unknown as Create;

/** A field's bounds as the server checks them. */
export function bounds(type: EntityType, field: string): Bounds {
  return create(type).fields[field] ?? {};
}

/** Whether creating one needs the field, given the values so far (a trunk's type decides some). */
export function isRequired(type: EntityType, field: string, values: Record<string, unknown> = {}): boolean {
  const c = create(type);
  if (c.required.includes(field)) return true;
  return c.requiredWhen.some((w) => values[w.field] === w.value && w.required.includes(field));
}

/** A text field's length in words: "8–128 characters", "4–12 digits", "at most 100 characters". */
export function lengthHint(type: EntityType, field: string): string | undefined {
  const b = bounds(type, field);
  const unit = b.pattern && /^\^\[0-9\]/.test(b.pattern) ? 'digits' : 'characters';
  if (b.minLength !== undefined && b.maxLength !== undefined) return b.minLength === b.maxLength ? `${b.minLength} ${unit}` : `${b.minLength}–${b.maxLength} ${unit}`;
  if (b.minLength !== undefined) return `at least ${b.minLength} ${unit}`;
  if (b.maxLength !== undefined) return `at most ${b.maxLength} ${unit}`;
  return undefined;
}

/** A number field's range for its input (min/max attributes). */
export function range(type: EntityType, field: string): { min?: number; max?: number } {
  const b = bounds(type, field);
  return { min: b.minimum, max: b.maximum };
}
