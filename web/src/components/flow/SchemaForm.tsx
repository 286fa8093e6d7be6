// A form generated from a node type's config JSON Schema (describe().config_schema).
import { Fragment } from 'react';
import type { JsonSchema } from '../../api/types';
import { Checkbox, describedBy, Field } from '../common/ui';
import { PromptPicker } from '../entities/PromptPicker';
import { choices, defaultsFromSchema, humanize, isPromptField, mapValues, schemaType } from './schema';

export interface SchemaFormProps {
  schema: JsonSchema;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  /** dotted path → message (from checkValue or from the API's details) */
  errors?: Record<string, string>;
  idPrefix: string;
}

export function SchemaForm({ schema, value, onChange, errors = {}, idPrefix }: SchemaFormProps) {
  const props = Object.entries(schema.properties ?? {});
  if (props.length === 0) return <p className="text-sm text-slate-500">This node has no settings.</p>;
  return (
    <ObjectFields
      schema={schema}
      value={value ?? {}}
      onChange={(v) => onChange(v as Record<string, unknown>)}
      errors={errors}
      path=""
      idPrefix={idPrefix}
    />
  );
}

interface NodeProps {
  schema: JsonSchema;
  value: unknown;
  onChange: (v: unknown) => void;
  errors: Record<string, string>;
  path: string;
  idPrefix: string;
  label?: string;
  required?: boolean;
}

function ObjectFields({ schema, value, onChange, errors, path, idPrefix }: NodeProps) {
  const o = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
  const req = new Set(schema.required ?? []);
  return (
    <>
      {Object.entries(schema.properties ?? {}).map(([k, p]) => (
        <Fragment key={k}>
          <SchemaField
            schema={p}
            value={o[k]}
            onChange={(v) => {
              const next = { ...o };
              if (v === undefined) delete next[k];
              else next[k] = v;
              onChange(next);
            }}
            errors={errors}
            path={path ? `${path}.${k}` : k}
            idPrefix={idPrefix}
            label={p.title ?? humanize(k)}
            required={req.has(k)}
          />
        </Fragment>
      ))}
    </>
  );
}

function SchemaField(props: NodeProps) {
  const { schema, value, onChange, errors, path, idPrefix, label = '', required } = props;
  const id = `${idPrefix}-${path.replace(/\./g, '-')}`;
  const error = errors[path];
  const help = schema.description;
  const t = schemaType(schema);
  const ch = choices(schema);

  if (isPromptField(path.split('.').at(-1) ?? '', schema)) {
    return (
      <PromptPicker
        id={id}
        label={label}
        value={(value as string) ?? ''}
        onChange={(v) => onChange(v || undefined)}
        error={error}
      />
    );
  }

  if (ch) {
    return (
      <Field id={id} label={label} error={error} help={help} required={required}>
        <select
          {...describedBy(id, error, help)}
          className={`input ${error ? 'input-error' : ''}`}
          value={value === undefined ? '' : JSON.stringify(value)}
          onChange={(e) => onChange(e.target.value === '' ? undefined : JSON.parse(e.target.value))}
        >
          {!required && <option value="">—</option>}
          {ch.map((c) => (
            <option key={JSON.stringify(c.value)} value={JSON.stringify(c.value)}>
              {c.label}
            </option>
          ))}
        </select>
      </Field>
    );
  }

  switch (t) {
    case 'boolean':
      if (typeof schema.default === 'boolean')
        return <Checkbox id={id} label={label} checked={(value ?? schema.default) === true} onChange={onChange} error={error} help={help} />;
      // no default in the schema: unset means "what the node does by default", so three choices
      return (
        <Field id={id} label={label} error={error} help={help}>
          <select
            {...describedBy(id, error, help)}
            className={`input ${error ? 'input-error' : ''}`}
            value={value === undefined ? '' : String(value)}
            onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value === 'true')}
          >
            <option value="">the node's default</option>
            <option value="true">yes</option>
            <option value="false">no</option>
          </select>
        </Field>
      );
    case 'integer':
    case 'number':
      return (
        <Field id={id} label={label} error={error} help={help} required={required}>
          <input
            {...describedBy(id, error, help)}
            className={`input ${error ? 'input-error' : ''}`}
            type="number"
            min={schema.minimum}
            max={schema.maximum}
            step={t === 'integer' ? 1 : 'any'}
            value={typeof value === 'number' ? value : ''}
            onChange={(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))}
          />
        </Field>
      );
    case 'string': {
      const multiline = schema['x-widget'] === 'textarea' || (schema.maxLength ?? 0) > 200;
      const inputType =
        schema['x-widget'] === 'password'
          ? 'password'
          : schema.format === 'uri'
            ? 'url'
            : schema.format === 'time'
              ? 'time'
              : schema.format === 'date'
                ? 'date'
                : schema.format === 'email'
                  ? 'email'
                  : 'text';
      return (
        <Field id={id} label={label} error={error} help={help} required={required}>
          {multiline ? (
            <textarea
              {...describedBy(id, error, help)}
              className={`input ${error ? 'input-error' : ''}`}
              rows={3}
              value={(value as string) ?? ''}
              onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value)}
            />
          ) : (
            <input
              {...describedBy(id, error, help)}
              className={`input ${error ? 'input-error' : ''}`}
              type={inputType}
              value={(value as string) ?? ''}
              onChange={(e) => onChange(e.target.value === '' ? undefined : e.target.value)}
            />
          )}
        </Field>
      );
    }
    case 'object':
      if (mapValues(schema)) return <MapField {...props} />;
      return (
        <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
          <legend className="px-1 text-sm font-medium text-slate-700">{label}</legend>
          {help && <p className="mb-2 text-xs text-slate-500">{help}</p>}
          {error && <p role="alert" className="mb-2 text-xs text-red-600">{error}</p>}
          <ObjectFields {...props} />
        </fieldset>
      );
    case 'array':
      return <ArrayField {...props} />;
    default:
      return (
        <Field id={id} label={label} error={error} help={help ?? 'JSON value'}>
          <textarea
            {...describedBy(id, error, help ?? 'JSON value')}
            className="input font-mono text-xs"
            rows={3}
            defaultValue={value === undefined ? '' : JSON.stringify(value, null, 2)}
            onBlur={(e) => {
              try {
                onChange(e.target.value.trim() === '' ? undefined : JSON.parse(e.target.value));
              } catch {
                /* keep the last valid value; the field shows what was typed */
              }
            }}
          />
        </Field>
      );
  }
}

function ArrayField({ schema, value, onChange, errors, path, idPrefix, label = '' }: NodeProps) {
  const items = Array.isArray(value) ? value : [];
  const itemSchema = schema.items ?? { type: 'string' };
  const canAdd = schema.maxItems === undefined || items.length < schema.maxItems;
  const canRemove = schema.minItems === undefined || items.length > schema.minItems;
  const error = errors[path];
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium text-slate-700">{label}</legend>
      {schema.description && <p className="mb-2 text-xs text-slate-500">{schema.description}</p>}
      {error && <p role="alert" className="mb-2 text-xs text-red-600">{error}</p>}
      {items.map((item, i) => (
        <div key={i} className="mb-2 flex items-start gap-2 border-b border-slate-100 pb-2 last:border-0">
          <div className="flex-1">
            <SchemaField
              schema={itemSchema}
              value={item}
              onChange={(v) => onChange(items.map((x, j) => (j === i ? v : x)))}
              errors={errors}
              path={`${path}.${i}`}
              idPrefix={idPrefix}
              label={`${itemSchema.title ?? 'Item'} ${i + 1}`}
            />
          </div>
          <button
            type="button"
            className="btn btn-ghost btn-sm mt-6"
            disabled={!canRemove}
            aria-label={`Remove ${(itemSchema.title ?? 'item').toLowerCase()} ${i + 1}`}
            onClick={() => onChange(items.filter((_, j) => j !== i))}
          >
            ✕
          </button>
        </div>
      ))}
      <button
        type="button"
        className="btn btn-sm"
        disabled={!canAdd}
        onClick={() => onChange([...items, defaultsFromSchema(itemSchema) ?? (schemaType(itemSchema) === 'string' ? '' : undefined)])}
      >
        Add {(itemSchema.title ?? 'item').toLowerCase()}
      </button>
    </fieldset>
  );
}

/** An object of free keys (`additionalProperties: {type: string}`): HTTP headers, variables. */
function MapField({ schema, value, onChange, errors, path, idPrefix, label = '' }: NodeProps) {
  const o = (value && typeof value === 'object' && !Array.isArray(value) ? value : {}) as Record<string, unknown>;
  const entries = Object.entries(o);
  const values = mapValues(schema) ?? { type: 'string' };
  const id = `${idPrefix}-${path.replace(/\./g, '-')}`;
  const error = errors[path];
  const rename = (from: string, to: string) => onChange(Object.fromEntries(entries.map(([k, v]) => (k === from ? [to, v] : [k, v]))));
  const nextKey = () => {
    for (let i = entries.length + 1; ; i++) if (!(`key${i}` in o)) return `key${i}`;
  };
  return (
    <fieldset className="mb-3 rounded-md border border-slate-200 p-3">
      <legend className="px-1 text-sm font-medium text-slate-700">{label}</legend>
      {schema.description && <p className="mb-2 text-xs text-slate-500">{schema.description}</p>}
      {error && <p role="alert" className="mb-2 text-xs text-red-600">{error}</p>}
      {entries.map(([k, v], i) => (
        <div key={i} className="mb-2 grid grid-cols-[1fr_1fr_auto] items-start gap-1">
          <label className="sr-only" htmlFor={`${id}-k${i}`}>{`${label} name ${i + 1}`}</label>
          <input id={`${id}-k${i}`} className="input" value={k} onChange={(e) => rename(k, e.target.value)} />
          <label className="sr-only" htmlFor={`${id}-v${i}`}>{`${label} value ${i + 1}`}</label>
          <input
            id={`${id}-v${i}`}
            className={`input ${errors[`${path}.${k}`] ? 'input-error' : ''}`}
            aria-invalid={errors[`${path}.${k}`] ? true : undefined}
            title={errors[`${path}.${k}`]}
            value={typeof v === 'string' ? v : JSON.stringify(v ?? '')}
            onChange={(e) => onChange({ ...o, [k]: schemaType(values) === 'string' ? e.target.value : (() => { try { return JSON.parse(e.target.value); } catch { return e.target.value; } })() })}
          />
          <button type="button" className="btn btn-ghost btn-sm" aria-label={`Remove ${label.toLowerCase()} ${k}`} onClick={() => onChange(Object.fromEntries(entries.filter(([x]) => x !== k)))}>
            ✕
          </button>
        </div>
      ))}
      <button type="button" className="btn btn-sm" onClick={() => onChange({ ...o, [nextKey()]: '' })}>
        Add {label.toLowerCase()}
      </button>
    </fieldset>
  );
}
