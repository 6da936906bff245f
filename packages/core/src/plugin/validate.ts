/** Options validation against a contribution's JSON schema, with messages a user can act on. */
import Ajv, { type ErrorObject } from 'ajv';
import type { OptionsSchema } from './manifest';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * `format: 'path'` marks a string option (run config or plugin options) as a filesystem path: a
 * relative value resolves against the folder of the config file that declares it (the run config
 * loader in @userpref/cli does that across `extends`). Any string is valid.
 */
export const PATH_FORMAT = 'path';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
ajv.addFormat(PATH_FORMAT, true);
const compiled = new WeakMap<OptionsSchema, ReturnType<typeof ajv.compile>>();

function describe(err: ErrorObject, schema: OptionsSchema): string {
  const path = err.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const key = (k: string) => (path ? `${path}.${k}` : k);
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const known = Object.keys(schema.properties ?? {}).join(', ');
      return `unknown option '${key(String(params.additionalProperty))}' (expected one of: ${known})`;
    }
    case 'required':
      return `missing required option '${key(String(params.missingProperty))}'`;
    case 'type':
      return `option '${path}' must be ${params.type}`;
    case 'enum':
      return `option '${path}' must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `option '${path}' ${err.message}`;
  }
}

/**
 * Validates (and fills defaults into a copy of) `options`. Unknown keys are always rejected,
 * whatever the schema says, so a typo never passes silently.
 */
export function validateOptions(where: string, schema: OptionsSchema, options: unknown): Record<string, unknown> {
  const strictSchema: OptionsSchema = { additionalProperties: false, ...schema };
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(strictSchema);
    compiled.set(schema, validate);
  }
  const value = structuredClone(options ?? {}) as Record<string, unknown>;
  if (!validate(value)) {
    const errors = (validate.errors ?? []).map((e) => describe(e, strictSchema));
    const got = (e: ErrorObject) => {
      const path = e.instancePath.split('/').filter(Boolean);
      let v: unknown = value;
      for (const p of path) v = (v as Record<string, unknown>)?.[p];
      return v;
    };
    const details = (validate.errors ?? []).map((e, i) => (e.keyword === 'type' || e.keyword === 'enum' ? `${errors[i]} (got ${JSON.stringify(got(e))})` : errors[i]));
    throw new ConfigError(`${where}: ${details.join('; ')}`);
  }
  return value;
}

/** A one-line-per-option help text generated from the schema (for --help and READMEs). */
export function describeOptions(schema: OptionsSchema): Array<{ key: string; type: string; default?: unknown; required: boolean; description: string }> {
  return Object.entries(schema.properties).map(([key, s]) => ({
    key,
    type: Array.isArray(s.enum) ? (s.enum as unknown[]).map((v) => JSON.stringify(v)).join('|') : String(s.type ?? 'any'),
    default: s.default,
    required: (schema.required ?? []).includes(key),
    description: s.description ?? '',
  }));
}

/**
 * The options a schema gives when none are written: every default, nested ones too (what
 * `validateOptions` fills into `{}`), with required options left out. For code that builds an
 * implementation without a config (tests, tools) and for the `…_DEFAULTS` constants a package
 * exports, so a default is written once, in the schema.
 */
export function optionDefaults(schema: OptionsSchema): Record<string, unknown> {
  const { required: _required, ...optional } = schema;
  return validateOptions('defaults', optional as OptionsSchema, {});
}
