/**
 * A LoRA adapter attached to a model (any LoraTarget: IDEFICS2, Idefics3 / SmolVLM), saved and
 * loaded as a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) so PEFT /
 * transformers read what we write and we read theirs.
 *
 * Tensor names: PEFT's save_pretrained of get_peft_model(<model>ForConditionalGeneration) writes
 * `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` (A [r, in], B [out, r]); transformers'
 * add_adapter + save_pretrained writes `<module>.lora_A.weight` without the prefix. Both are read;
 * an in-memory style `.lora_A.<adapter>.weight` is accepted too. We write PEFT's form.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '@userpref/safetensors';
import type { Linear, LinearPart } from './linear';
import { LoraModule, targetMatcher, validateLoraSettings, type LoraSettings } from './lora';
import { loraConfigToJson, loraSettingsFromJson } from './peft-config';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
const PEFT_PREFIX = 'base_model.model.';

/** Modules PEFT could adapt but this implementation does not (Conv2d / Embedding layers). */
const UNSUPPORTED_TARGETS = ['model.vision_model.embeddings.patch_embedding', 'model.vision_model.embeddings.position_embedding', 'model.text_model.embed_tokens'];

/** What an adapter attaches to: every Linear of a model, each part named like its Hugging Face module. */
export interface LoraTarget {
  linears(): Linear[];
}

export class LoraAdapterError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in core). */
  readonly expected = true;
}

export class LoraAdapter {
  private constructor(
    readonly settings: LoraSettings,
    private readonly entries: Array<{ part: LinearPart; linear: Linear; module: LoraModule }>,
  ) {}

  /**
   * Creates LoRA modules on every Linear whose Hugging Face module name the settings target
   * (PEFT matching), replacing any adapter already attached. `seed` draws the gaussian A.
   */
  static attach(model: LoraTarget, settings: LoraSettings, seed: number): LoraAdapter {
    validateLoraSettings(settings);
    const match = targetMatcher(settings.targetModules);
    for (const name of UNSUPPORTED_TARGETS) {
      if (match(name)) throw new LoraAdapterError(`LoRA target_modules ${JSON.stringify(settings.targetModules)} selects '${name}', which is not a Linear layer; only Linear layers are adapted here`);
    }
    const entries: Array<{ part: LinearPart; linear: Linear; module: LoraModule }> = [];
    for (const linear of model.linears()) {
      for (const part of linear.parts) {
        if (part.merged) throw new LoraAdapterError(`'${part.name}' holds a merged LoRA adapter; unmerge() or detach() it before attaching another`);
        if (part.lora) {
          part.lora.dispose();
          part.lora = null;
        }
        if (!match(part.name)) continue;
        const module = LoraModule.create(part.name, linear.inFeatures, part.out, settings, seed, entries.length);
        part.lora = module;
        entries.push({ part, linear, module });
      }
    }
    if (entries.length === 0) throw new LoraAdapterError(`LoRA target_modules ${JSON.stringify(settings.targetModules)} matches no Linear layer of the model`);
    return new LoraAdapter(settings, entries);
  }

  get modules(): LoraModule[] {
    return this.entries.map((e) => e.module);
  }

  /** The trainable variables: A^T and B^T of every module not merged into the weights. */
  variables(): tf.Variable[] {
    return this.entries.filter((e) => e.part.lora === e.module).flatMap((e) => [e.module.a, e.module.b]);
  }

  /** True while the adapter is folded into the frozen weights (merge, until unmerge). */
  get merged(): boolean {
    return this.entries.length > 0 && this.entries.every((e) => e.part.merged === e.module);
  }

  numParameters(): number {
    return this.entries.reduce((s, e) => s + e.module.r * (e.module.inFeatures + e.module.outFeatures), 0);
  }

  /** PEFT tensors: name -> [shape, data] in PEFT's layout (A [r, in], B [out, r]). */
  peftTensors(): TensorToWrite[] {
    const out: TensorToWrite[] = [];
    for (const { module: m } of this.entries) {
      // Read outside tidy: tidy walks whatever its function returns, element by element.
      const at = tf.transpose(m.a);
      const bt = tf.transpose(m.b);
      const a = at.dataSync() as Float32Array;
      const b = bt.dataSync() as Float32Array;
      at.dispose();
      bt.dispose();
      out.push({ name: `${PEFT_PREFIX}${m.name}.lora_A.weight`, dtype: 'F32', shape: [m.r, m.inFeatures], data: a });
      out.push({ name: `${PEFT_PREFIX}${m.name}.lora_B.weight`, dtype: 'F32', shape: [m.outFeatures, m.r], data: b });
    }
    return out;
  }

  /** Writes a PEFT adapter directory. */
  async save(dir: string, baseModelNameOrPath: string | null): Promise<void> {
    await fs.mkdir(dir, { recursive: true });
    const config = loraConfigToJson(this.settings, { baseModelNameOrPath });
    await fs.writeFile(path.join(dir, ADAPTER_CONFIG), JSON.stringify(config, null, 2) + '\n');
    await writeSafetensors(path.join(dir, ADAPTER_WEIGHTS), this.peftTensors(), { format: 'pt' });
  }

  /**
   * Folds every module into the frozen weights (PEFT's merge_adapter): inference then runs one
   * product per layer, and nothing is left to train (variables() is empty) until unmerge().
   * `safe` (default true, PEFT's safe_merge) refuses NaN / infinite merged weights, naming the
   * layer, and leaves the whole model unmerged. A no-op when already merged.
   */
  merge(options: { safe?: boolean } = {}): void {
    if (this.merged) return;
    const safe = options.safe ?? true;
    const done: Linear[] = [];
    for (const l of new Set(this.entries.map((e) => e.linear))) {
      try {
        l.mergeLora({ safe });
      } catch (e) {
        for (const d of done) d.unmergeLora();
        throw new LoraAdapterError((e as Error).message);
      }
      done.push(l);
    }
  }

  /** Takes a merged adapter out of the weights again (PEFT's unmerge_adapter); a no-op when not merged. */
  unmerge(): void {
    for (const l of new Set(this.entries.filter((e) => e.part.merged === e.module).map((e) => e.linear))) l.unmergeLora();
  }

  /** merge(), then frees the LoRA variables (PEFT's merge_and_unload): the merged weights stay, for good. */
  mergeAndUnload(options: { safe?: boolean } = {}): void {
    this.merge(options);
    for (const e of this.entries) {
      if (e.part.merged === e.module) e.part.merged = null;
      e.module.dispose();
    }
    this.entries.length = 0;
  }

  /** Removes the adapter from the model (a merged one is first taken out of the weights). */
  detach(): void {
    this.unmerge();
    for (const e of this.entries) {
      if (e.part.lora === e.module) e.part.lora = null;
      e.module.dispose();
    }
    this.entries.length = 0;
  }

  /**
   * Reads a PEFT adapter directory and attaches it to `model`: the config decides which modules
   * are adapted (so r and targets may differ from the current run's), the tensors fill A and B.
   * Every tensor must belong to a targeted module with the right shape, and every targeted module
   * must have both tensors.
   */
  static async load(model: LoraTarget, dir: string): Promise<LoraAdapter> {
    const cfgFile = path.join(dir, ADAPTER_CONFIG);
    const settings = parseAdapterConfig(await readJson(cfgFile), cfgFile);
    const file = path.join(dir, ADAPTER_WEIGHTS);
    const st = await SafetensorsFile.open(file).catch((e: Error) => {
      throw new LoraAdapterError(`cannot open ${file}: ${e.message}`);
    });
    const adapter = LoraAdapter.attach(model, settings, 0);
    try {
      const byModule = new Map(adapter.entries.map((e) => [e.module.name, e.module]));
      const seen = new Set<string>();
      for (const key of st.names()) {
        const parsed = parsePeftKey(key);
        if (!parsed) throw new LoraAdapterError(`${file}: tensor '${key}' is not a LoRA A/B weight (only LoRA without bias / modules_to_save is supported)`);
        const module = byModule.get(parsed.module);
        if (!module) throw new LoraAdapterError(`${file}: tensor '${key}' belongs to module '${parsed.module}', which ${cfgFile}'s target_modules does not select in this model`);
        const want = parsed.which === 'A' ? [module.r, module.inFeatures] : [module.outFeatures, module.r];
        const shape = st.entry(key).shape;
        if (shape.length !== 2 || shape[0] !== want[0] || shape[1] !== want[1]) {
          throw new LoraAdapterError(`${file}: tensor '${key}' has shape [${shape.join(', ')}] but the model and r=${module.r} need [${want.join(', ')}]`);
        }
        const data = await st.readFloat32(key);
        const t = tf.tidy(() => tf.transpose(tf.tensor2d(data, [want[0], want[1]])));
        (parsed.which === 'A' ? module.a : module.b).assign(t as tf.Tensor2D);
        t.dispose();
        seen.add(`${parsed.module}:${parsed.which}`);
      }
      const missing = adapter.entries.flatMap((e) => (['A', 'B'] as const).filter((w) => !seen.has(`${e.module.name}:${w}`)).map((w) => `${e.module.name}.lora_${w}`));
      if (missing.length > 0) throw new LoraAdapterError(`${file}: no weights for ${missing.length} targeted module tensor(s), e.g. ${missing.slice(0, 3).join(', ')}`);
    } catch (e) {
      adapter.detach();
      throw e;
    } finally {
      await st.close();
    }
    return adapter;
  }
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new LoraAdapterError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new LoraAdapterError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** module name and A/B of a PEFT or transformers adapter key, or null. */
export function parsePeftKey(key: string): { module: string; which: 'A' | 'B' } | null {
  const m = /^(?:base_model\.model\.)?(.+)\.lora_(A|B)(?:\.[^.]+)?\.weight$/.exec(key);
  return m ? { module: m[1], which: m[2] as 'A' | 'B' } : null;
}

/** adapter_config.json -> LoRA settings, rejecting what this implementation would not honour (PEFT_LORA_CONFIG). */
export function parseAdapterConfig(json: Record<string, unknown>, file: string): LoraSettings {
  let settings: LoraSettings;
  try {
    settings = loraSettingsFromJson(json, file);
    validateLoraSettings(settings, file);
  } catch (e) {
    throw new LoraAdapterError((e as Error).message);
  }
  return settings;
}
