/**
 * Writes a random-initialised IDEFICS2 checkpoint directory in the Hugging Face layout of
 * HuggingFaceM4/idefics2-8b, so tests and the CPU demo exercise the real loading path (config.json,
 * safetensors shards + index, tokenizer and processor files) without downloading anything.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { writeShardedCheckpoint, type TensorToWrite } from '@userpref/safetensors';
import { modelConfig, preprocessorConfig, processorConfig, PRESETS, type PresetName, type WeightDtype } from './config';
import { buildTokenizer } from './tokenizer';
import { parseIdefics2Config } from '../model/config';
import { idefics2TensorSpecs, initTensor, numel } from './weights';

export { PRESETS, INITIALIZER_RANGE } from './config';
export type { PresetName, WeightDtype, Idefics2Sizes } from './config';
export { idefics2TensorSpecs, initTensor } from './weights';
export type { TensorSpec } from './weights';
export { buildTokenizer, IDEFICS2_CHAT_TEMPLATE, FAKE_IMAGE_TOKEN, IMAGE_TOKEN, END_OF_UTTERANCE } from './tokenizer';

export interface WriteCheckpointOptions {
  preset: PresetName;
  outDir: string;
  /** Seed of the weights (default 0). */
  seed?: number;
  /** On-disk dtype of the weights (default F32). */
  dtype?: WeightDtype;
  /** Largest shard in bytes; above it the weights are split into model-0000i-of-0000N files. */
  shardBytes?: number;
  /** Called after each tensor is generated (progress). */
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface WrittenCheckpoint {
  dir: string;
  files: string[];
  parameters: number;
  tensors: number;
  vocabSize: number;
}

/** Number of parameters a config.json describes. */
export function countParameters(config: unknown): number {
  return idefics2TensorSpecs(parseIdefics2Config(config)).reduce((s, t) => s + numel(t.shape), 0);
}

/** The config.json of a preset (what writeIdefics2Checkpoint writes), without writing anything. */
export function presetConfig(preset: PresetName, dtype: WeightDtype = 'F32'): Record<string, unknown> {
  const sizes = PRESETS[preset];
  if (!sizes) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const tok = buildTokenizer(sizes.baseVocabSize, sizes.text.maxPositions);
  return modelConfig(preset, sizes, { vocabSize: tok.vocabSize, imageTokenId: tok.ids.image, bos: tok.ids.bos, eos: tok.ids.eos, pad: tok.ids.pad }, dtype);
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await fs.writeFile(file, JSON.stringify(value, null, 2) + '\n');
}

export async function writeIdefics2Checkpoint(options: WriteCheckpointOptions): Promise<WrittenCheckpoint> {
  const { preset, outDir } = options;
  const seed = options.seed ?? 0;
  const dtype = options.dtype ?? 'F32';
  if (!['F32', 'F16', 'BF16'].includes(dtype)) throw new Error(`dtype must be F32, F16 or BF16, got '${dtype}'`);
  const sizes = PRESETS[preset];
  if (!sizes) throw new Error(`unknown preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);

  const tok = buildTokenizer(sizes.baseVocabSize, sizes.text.maxPositions);
  const config = modelConfig(preset, sizes, { vocabSize: tok.vocabSize, imageTokenId: tok.ids.image, bos: tok.ids.bos, eos: tok.ids.eos, pad: tok.ids.pad }, dtype);
  const specs = idefics2TensorSpecs(parseIdefics2Config(config));

  await fs.mkdir(outDir, { recursive: true });
  // A stale single file or index from an earlier run with other sharding would confuse loaders.
  for (const f of await fs.readdir(outDir)) {
    if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(f)) await fs.rm(path.join(outDir, f));
  }
  const files: string[] = [];
  const json = async (name: string, value: unknown) => {
    const file = path.join(outDir, name);
    await writeJson(file, value);
    files.push(file);
  };
  await json('config.json', config);
  await json('generation_config.json', { _from_model_config: true, bos_token_id: tok.ids.bos, eos_token_id: [tok.ids.eos, tok.ids.endOfUtterance], pad_token_id: tok.ids.pad });
  await json('preprocessor_config.json', preprocessorConfig(sizes));
  await json('processor_config.json', processorConfig(sizes));
  for (const [name, value] of Object.entries(tok.files)) await json(name, value);

  const tensors: TensorToWrite[] = specs.map((spec, i) => {
    const data = initTensor(spec, seed);
    options.onTensor?.(i + 1, specs.length, spec.name);
    return { name: spec.name, dtype, shape: spec.shape, data };
  });
  const weightFiles = await writeShardedCheckpoint(outDir, tensors, { maxShardBytes: options.shardBytes });
  files.push(...weightFiles);
  return { dir: outDir, files, parameters: specs.reduce((s, t) => s + numel(t.shape), 0), tensors: specs.length, vocabSize: tok.vocabSize };
}
