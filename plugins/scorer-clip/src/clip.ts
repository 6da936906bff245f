/**
 * A CLIP checkpoint in the layout transformers.js loads (the Xenova/* repositories): config.json,
 * tokenizer.json + tokenizer_config.json, preprocessor_config.json, onnx/text_model.onnx
 * (input_ids -> text_embeds) and onnx/vision_model.onnx (pixel_values -> image_embeds), run by
 * onnxruntime through @huggingface/transformers, from local files only.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { PreferenceImage } from '@userpref/core';
import type * as Transformers from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import { parseClipImageConfig, pixelValues, type ClipImageConfig } from './preprocess';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformers = require('@huggingface/transformers') as typeof Transformers;

/** The files a CLIP checkpoint directory must hold, with what each is for. */
export const CLIP_FILES: ReadonlyArray<{ file: string; role: string; part: 'text' | 'vision' | 'both' }> = [
  { file: 'config.json', role: 'model config', part: 'both' },
  { file: 'tokenizer.json', role: 'tokenizer', part: 'text' },
  { file: 'tokenizer_config.json', role: 'tokenizer settings', part: 'text' },
  { file: 'preprocessor_config.json', role: 'image preprocessing', part: 'vision' },
  { file: path.join('onnx', 'text_model.onnx'), role: 'text encoder with projection (CLIPTextModelWithProjection)', part: 'text' },
  { file: path.join('onnx', 'vision_model.onnx'), role: 'image encoder with projection (CLIPVisionModelWithProjection)', part: 'vision' },
];

/** A checkpoint file is not there. `expected`: the runners print it as one line (core's isExpectedError). */
export class MissingModelFileError extends Error {
  readonly expected = true;
  constructor(readonly file: string, role: string, hint: string) {
    super(`${file} is missing (${role}). ${hint}`);
    this.name = 'MissingModelFileError';
  }
}

const EXPORT_HINT = 'plugins/scorer-clip/README.md says where to get it: a ready ONNX export (e.g. Xenova/clip-vit-large-patch14), or a transformers CLIP exported with goldens/clip_onnx.py.';

/** Checks that `dir` holds every file the needed parts load, naming the first missing one. */
export async function checkClipDir(dir: string, parts: 'text' | 'vision' | 'both'): Promise<void> {
  for (const f of CLIP_FILES) {
    if (parts !== 'both' && f.part !== 'both' && f.part !== parts) continue;
    const full = path.join(dir, f.file);
    const ok = await fs.stat(full).then((s) => s.isFile(), () => false);
    if (!ok) throw new MissingModelFileError(full, f.role, EXPORT_HINT);
  }
}

function offline(): void {
  const env = transformers.env;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
}

/**
 * Loaded encoders are shared by checkpoint directory and part within the process: the Table 1
 * config loads ViT-L/14's image tower once for both `clip` and `aesthetic`. The last user's
 * dispose() frees it.
 */
const shared = new Map<string, { value: Promise<Transformers.PreTrainedModel>; users: number }>();

function acquire(key: string, load: () => Promise<Transformers.PreTrainedModel>): Promise<Transformers.PreTrainedModel> {
  let entry = shared.get(key);
  if (!entry) {
    entry = { value: load(), users: 0 };
    shared.set(key, entry);
    // A failed load is not kept: the next init() tries again.
    entry.value.catch(() => shared.delete(key));
  }
  entry.users++;
  return entry.value;
}

async function release(key: string): Promise<void> {
  const entry = shared.get(key);
  if (!entry) return;
  if (--entry.users > 0) return;
  shared.delete(key);
  await (await entry.value).dispose();
}

/** One CLIP checkpoint: projected, unnormalised text and image embeddings. */
export class ClipEncoder {
  /** Encoders loaded in this process (directory#text / directory#vision), for tests and logs. */
  static loadedEncoders(): string[] {
    return [...shared.keys()];
  }


  private tokenizer?: Transformers.PreTrainedTokenizer;
  private textModel?: Transformers.PreTrainedModel;
  private visionModel?: Transformers.PreTrainedModel;
  private imageConfig?: ClipImageConfig;
  private maxLength = 77;
  private textInputs: string[] = ['input_ids'];
  private held: string[] = [];

  constructor(
    readonly dir: string,
    readonly parts: 'text' | 'vision' | 'both',
    /** Images per vision-encoder call. */
    readonly batchSize = 8,
  ) {}

  async init(): Promise<void> {
    if (this.held.length) return;
    await checkClipDir(this.dir, this.parts);
    offline();
    // Weights over 2 GB (ViT-H-14's image tower in float32) sit in onnx/<name>.onnx_data beside the graph.
    const external = async (name: string) => fs.stat(path.join(this.dir, 'onnx', `${name}.onnx_data`)).then((s) => s.isFile(), () => false);
    const external_data = { 'text_model.onnx': await external('text_model'), 'vision_model.onnx': await external('vision_model') };
    const opts = { local_files_only: true, dtype: 'fp32' as const, device: 'cpu' as const, use_external_data_format: external_data };
    // An absolute path is not a Hub id: transformers.js reads <dir>/<file> directly.
    if (this.parts !== 'vision') {
      this.tokenizer = await transformers.AutoTokenizer.from_pretrained(this.dir, { local_files_only: true });
      const config = JSON.parse(await fs.readFile(path.join(this.dir, 'config.json'), 'utf8')) as { text_config?: { max_position_embeddings?: number }; max_position_embeddings?: number };
      const positions = config.text_config?.max_position_embeddings ?? config.max_position_embeddings ?? 77;
      const tokLimit = this.tokenizer.model_max_length;
      this.maxLength = Math.min(positions, typeof tokLimit === 'number' && Number.isFinite(tokLimit) && tokLimit > 2 ? tokLimit : positions);
      this.textModel = await this.hold(`${this.dir}#text`, () => transformers.CLIPTextModelWithProjection.from_pretrained(this.dir, opts));
      this.textInputs = (this.textModel as unknown as { sessions: Record<string, { inputNames: string[] }> }).sessions.model?.inputNames ?? ['input_ids'];
    }
    if (this.parts !== 'text') {
      const file = path.join(this.dir, 'preprocessor_config.json');
      this.imageConfig = parseClipImageConfig(JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>, file);
      this.visionModel = await this.hold(`${this.dir}#vision`, () => transformers.CLIPVisionModelWithProjection.from_pretrained(this.dir, opts));
    }
  }

  private async hold(key: string, load: () => Promise<Transformers.PreTrainedModel>): Promise<Transformers.PreTrainedModel> {
    const model = acquire(key, load);
    this.held.push(key);
    try {
      return await model;
    } catch (e) {
      this.held.pop();
      shared.get(key) && release(key);
      throw e;
    }
  }

  /**
   * Token ids of a prompt: BOS + BPE tokens + EOS. A prompt longer than the text model's context
   * (77) keeps its first 75 tokens between BOS and EOS, as transformers' CLIPTokenizer (and
   * open_clip's) truncate. transformers.js's own truncation would cut the EOS, whose position is
   * where CLIP reads the text embedding.
   */
  tokenize(prompt: string): number[] {
    if (!this.tokenizer) throw new Error(`${this.dir}: the text encoder is not loaded (init() first, with parts 'text' or 'both')`);
    const ids = this.tokenizer.encode(prompt, { add_special_tokens: true });
    return ids.length <= this.maxLength ? ids : [...ids.slice(0, this.maxLength - 1), ids[ids.length - 1]];
  }

  private encode(prompt: string): Transformers.Tensor {
    const ids = this.tokenize(prompt);
    return new transformers.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
  }

  /** [d] projected text embedding of one prompt. */
  async textEmbedding(prompt: string): Promise<Float32Array> {
    if (!this.textModel) throw new Error(`${this.dir}: the text encoder is not loaded`);
    const inputIds = this.encode(prompt);
    // Exports that also take an attention mask get all ones: one unpadded prompt at a time.
    const feeds: Record<string, Transformers.Tensor> = { input_ids: inputIds };
    if (this.textInputs.includes('attention_mask')) feeds.attention_mask = new transformers.Tensor('int64', new BigInt64Array(inputIds.dims[1]).fill(1n), inputIds.dims);
    const out = (await this.textModel(feeds)) as { text_embeds: Transformers.Tensor };
    return Float32Array.from(out.text_embeds.data as Float32Array);
  }

  /** Pixel values of one image, [3, H, W], as the Python CLIP processor makes them. */
  pixels(img: Parameters<typeof pixelValues>[0]): { height: number; width: number; chw: Float32Array } {
    if (!this.imageConfig) throw new Error(`${this.dir}: the image encoder is not loaded`);
    return pixelValues(img, this.imageConfig);
  }

  /** [n][d] projected image embeddings. */
  async imageEmbeddings(images: readonly PreferenceImage[]): Promise<Float32Array[]> {
    if (!this.visionModel) throw new Error(`${this.dir}: the image encoder is not loaded`);
    const out: Float32Array[] = [];
    for (let s = 0; s < images.length; s += this.batchSize) {
      const chunk = images.slice(s, s + this.batchSize);
      const px = await Promise.all(chunk.map(async (im) => this.pixels(await im.decode())));
      const { height, width } = px[0];
      const data = new Float32Array(px.length * 3 * height * width);
      px.forEach((p, i) => data.set(p.chw, i * p.chw.length));
      const input = new transformers.Tensor('float32', data, [px.length, 3, height, width]);
      const res = (await this.visionModel({ pixel_values: input })) as { image_embeds: Transformers.Tensor };
      const emb = res.image_embeds.data as Float32Array;
      const d = emb.length / px.length;
      for (let i = 0; i < px.length; i++) out.push(Float32Array.from(emb.subarray(i * d, (i + 1) * d)));
    }
    return out;
  }

  async dispose(): Promise<void> {
    const held = this.held;
    this.held = [];
    this.textModel = undefined;
    this.visionModel = undefined;
    for (const key of held) await release(key);
  }
}

/** Cosine similarity in float64. */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`embedding widths differ: ${a.length} vs ${b.length}`);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / (Math.sqrt(aa) * Math.sqrt(bb));
}
