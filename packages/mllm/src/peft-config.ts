/**
 * PEFT's LoraConfig (peft/tuners/lora/config.py), the keys of adapter_config.json, described once:
 * each key says what `save()` writes from the LoRA settings and what `load()` accepts back, so the
 * writer and the reader cannot drift apart (as PEFT's one dataclass serves both directions).
 *
 * A key is one of:
 * - a setting: written from the settings, read back into them (r, lora_alpha, lora_dropout,
 *   target_modules, init_lora_weights, use_rslora);
 * - fixed: written with the one value this implementation honours; on reading, any other value is
 *   refused with the key named (bias 'none', use_dora false, ...). `absent` values (null, {}, [])
 *   count as that value, so configs written by other PEFT versions load;
 * - informational: written (task_type, base_model_name_or_path, inference_mode, revision) and
 *   ignored on reading.
 * Keys this table does not know (PEFT adds some in each release: peft_version, eva_config, ...)
 * are ignored on reading when null / false / {} and refused otherwise, so a feature we do not
 * implement is never silently dropped.
 */
import type { LoraInit, LoraSettings } from './lora';

export class PeftConfigError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

/** What save() knows beyond the settings. */
export interface PeftWriteContext {
  readonly baseModelNameOrPath: string | null;
}

type Json = unknown;

interface SettingKey {
  readonly kind: 'setting';
  readonly write: (s: LoraSettings) => Json;
  /** The settings fields this key fills (undefined in the JSON -> `missing`). */
  readonly read: (v: Json, fail: (msg: string) => never) => Partial<Mutable<LoraSettings>>;
  readonly missing?: Partial<Mutable<LoraSettings>>;
}

interface FixedKey {
  readonly kind: 'fixed';
  readonly value: Json;
  /** Values that mean the same as `value` in configs of other PEFT versions. */
  readonly alsoAccepted?: readonly Json[];
  /** Written by save() (false: only checked on reading). */
  readonly written: boolean;
  /** Must be present on reading. */
  readonly required?: boolean;
  readonly why: string;
}

interface InfoKey {
  readonly kind: 'info';
  readonly write: (s: LoraSettings, ctx: PeftWriteContext) => Json;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type KeySpec = SettingKey | FixedKey | InfoKey;

const isNumber = (v: Json): v is number => typeof v === 'number' && Number.isFinite(v);
const number = (v: Json, fail: (msg: string) => never): number => (isNumber(v) ? v : fail(`must be a number, got ${JSON.stringify(v)}`));

/** Every key of adapter_config.json this implementation writes or checks, in the order save() writes them. */
export const PEFT_LORA_CONFIG: ReadonlyArray<readonly [string, KeySpec]> = [
  ['peft_type', { kind: 'fixed', value: 'LORA', written: true, required: true, why: 'only LORA adapters are supported' }],
  ['task_type', { kind: 'info', write: () => 'CAUSAL_LM' }],
  ['base_model_name_or_path', { kind: 'info', write: (_s, ctx) => ctx.baseModelNameOrPath }],
  ['r', { kind: 'setting', write: (s) => s.r, read: (v, fail) => ({ r: number(v, fail) }) }],
  ['lora_alpha', { kind: 'setting', write: (s) => s.alpha, read: (v, fail) => ({ alpha: number(v, fail) }) }],
  ['lora_dropout', { kind: 'setting', write: (s) => s.dropout, read: (v, fail) => ({ dropout: number(v, fail) }), missing: { dropout: 0 } }],
  [
    'target_modules',
    {
      kind: 'setting',
      write: (s) => (typeof s.targetModules === 'string' ? s.targetModules : [...s.targetModules]),
      read: (v, fail) => {
        if (typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))) return { targetModules: v as string | string[] };
        return fail(`must be a regex string or a list of names, got ${JSON.stringify(v)}`);
      },
    },
  ],
  ['bias', { kind: 'fixed', value: 'none', written: true, why: "only 'none' is supported" }],
  ['fan_in_fan_out', { kind: 'fixed', value: false, written: true, why: 'not supported for Linear layers' }],
  [
    'init_lora_weights',
    {
      kind: 'setting',
      write: (s) => (s.init === 'gaussian' ? 'gaussian' : false),
      // The weights file fills A and B, so the init only matters for a config written here and
      // trained further; PEFT's other inits (true = Kaiming-uniform A, 'pissa', ...) read as 'zeros'.
      read: (v) => ({ init: (v === 'gaussian' ? 'gaussian' : 'zeros') as LoraInit }),
      missing: { init: 'zeros' },
    },
  ],
  ['use_rslora', { kind: 'setting', write: (s) => s.useRslora ?? false, read: (v) => ({ useRslora: v === true }), missing: { useRslora: false } }],
  ['use_dora', { kind: 'fixed', value: false, written: true, why: 'DoRA is not supported' }],
  ['modules_to_save', { kind: 'fixed', value: null, alsoAccepted: [[]], written: true, why: 'fully trained extra modules are not supported' }],
  ['layers_to_transform', { kind: 'fixed', value: null, written: true, why: 'not supported' }],
  // Only read by PEFT together with layers_to_transform (refused above unless null).
  ['layers_pattern', { kind: 'info', write: () => null }],
  ['rank_pattern', { kind: 'fixed', value: {}, alsoAccepted: [null], written: true, why: 'per-module ranks are not supported' }],
  ['alpha_pattern', { kind: 'fixed', value: {}, alsoAccepted: [null], written: true, why: 'per-module alphas are not supported' }],
  ['inference_mode', { kind: 'info', write: () => true }],
  ['revision', { kind: 'info', write: () => null }],
  ['exclude_modules', { kind: 'fixed', value: null, written: false, why: 'not supported' }],
  ['target_parameters', { kind: 'fixed', value: null, written: false, why: 'not supported' }],
  ['trainable_token_indices', { kind: 'fixed', value: null, written: false, why: 'not supported' }],
  ['layer_replication', { kind: 'fixed', value: null, written: false, why: 'not supported' }],
  ['lora_bias', { kind: 'fixed', value: false, written: false, why: 'LoRA with a bias on B is not supported' }],
  ['use_qalora', { kind: 'fixed', value: false, written: false, why: 'QA-LoRA is not supported' }],
];

const BY_KEY = new Map(PEFT_LORA_CONFIG);

const same = (a: Json, b: Json) => JSON.stringify(a) === JSON.stringify(b);
/** A value that switches nothing on: what an unknown key of a newer PEFT may hold and still be ignored. */
const inert = (v: Json) => v === null || v === false || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);
/** Keys of newer PEFT versions that only describe the file (never change the computation). */
const DESCRIPTIVE = new Set(['peft_version', 'auto_mapping', 'megatron_core', 'qalora_group_size']);

/** adapter_config.json of an adapter with these settings. */
export function loraConfigToJson(settings: LoraSettings, ctx: PeftWriteContext): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [key, spec] of PEFT_LORA_CONFIG) {
    if (spec.kind === 'setting') out[key] = spec.write(settings);
    else if (spec.kind === 'info') out[key] = spec.write(settings, ctx);
    else if (spec.written) out[key] = spec.value;
  }
  return out;
}

/**
 * adapter_config.json -> LoRA settings, refusing (with `file` and the key named) what this
 * implementation would not honour. The settings are not yet validated (validateLoraSettings).
 */
export function loraSettingsFromJson(json: Record<string, Json>, file: string): LoraSettings {
  const fail =
    (key: string) =>
    (msg: string): never => {
      throw new PeftConfigError(`${file}: '${key}' ${msg}`);
    };
  const settings: Partial<Mutable<LoraSettings>> = {};
  for (const [key, spec] of PEFT_LORA_CONFIG) {
    const v = json[key];
    if (spec.kind === 'setting') {
      if (v === undefined) {
        if (!spec.missing) fail(key)('is missing');
        Object.assign(settings, spec.missing);
      } else {
        Object.assign(settings, spec.read(v, fail(key)));
      }
    } else if (spec.kind === 'fixed' && v === undefined && spec.required) {
      fail(key)(`is missing; ${spec.why}`);
    } else if (spec.kind === 'fixed' && v !== undefined && !same(v, spec.value) && !(spec.alsoAccepted ?? []).some((a) => same(a, v))) {
      fail(key)(`is ${JSON.stringify(v)}; ${spec.why}`);
    }
  }
  for (const [key, v] of Object.entries(json)) {
    if (BY_KEY.has(key) || DESCRIPTIVE.has(key) || inert(v)) continue;
    fail(key)(`is ${JSON.stringify(v)}; this PEFT option is not supported`);
  }
  return settings as LoraSettings;
}
