/**
 * Llama 3.1's scaled RoPE (rope_type "llama3", as in HuggingFaceM4/Idefics3-8B-Llama3) against
 * transformers: idefics3-tiny's weights with a text config whose llama3 scaling has
 * original_max_position_embeddings 32, so that all three frequency bands occur and the sequences
 * (538 and 930 tokens) reach far beyond it (goldens/make_idefics3_llama3_rope_goldens.py). Logits
 * of a right-padded batch to 1e-5 relative; the inverse frequencies themselves are checked in
 * packages/mllm/test/rope.spec.ts.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { Idefics3Model } from '../src/model/idefics3';
import { Idefics3Processor } from '../src/processor/processor';
import { processIdefics3Image, type ProcessedImage } from '../src/processor/image';
import { checkpointDir, FIXTURES, readImage, relErr, tileBatch, paddedLastLogits } from './fixtures';

const TOL = 1e-5;
const NAME = 'idefics3-llama3rope-tiny';

interface Llama3Golden {
  rope_parameters: { rope_type: string; rope_theta: number; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number };
  inv_freq: number[];
  padded: { images: number[][]; input_ids: number[][]; pad_token_id: number; logits: number[][]; logits_unpadded: number[][]; logits_default_rope: number[][]; default_vs_llama3_rel_diff: number };
}

describe('llama3 RoPE scaling vs transformers', () => {
  let golden: Llama3Golden;
  let model: Idefics3Model;
  let dir: string;
  const processed = new Map<number, ProcessedImage>();

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = JSON.parse(await fs.readFile(path.join(FIXTURES, 'goldens', `${NAME}.json`), 'utf8')) as Llama3Golden;
    // The checkpoint: idefics3-tiny's weights (the scaling changes no weight) beside the llama3 config.json.
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics3-llama3rope-'));
    await fs.copyFile(path.join(checkpointDir('idefics3-tiny'), 'model.safetensors'), path.join(dir, 'model.safetensors'));
    await fs.copyFile(path.join(FIXTURES, NAME, 'config.json'), path.join(dir, 'config.json'));
    model = await Idefics3Model.load(dir);
    const expected = { imageSeqLen: model.config.imageSeqLen, tileSize: model.config.vision.imageSize, imageTokenId: model.config.imageTokenId };
    const proc = await Idefics3Processor.fromPretrained(checkpointDir('idefics3-tiny'), { usePrompt: true, maxPromptLen: null }, expected);
    for (const i of new Set(golden.padded.images.flat())) processed.set(i, processIdefics3Image(await readImage(i), proc.imageConfig));
  });

  afterAll(async () => {
    model?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const tiles = (images: number[]): tf.Tensor4D => tileBatch(images.map((i) => processed.get(i)!));

  it('parses the llama3 rope_parameters transformers saved', () => {
    const g = golden.rope_parameters;
    expect(model.config.text.rope).toEqual({
      type: 'llama3',
      theta: g.rope_theta,
      factor: g.factor,
      lowFreqFactor: g.low_freq_factor,
      highFreqFactor: g.high_freq_factor,
      originalMaxPositionEmbeddings: g.original_max_position_embeddings,
    });
    expect(model.config.text.ropeTheta).toBe(g.rope_theta);
    expect(model.loadReport.unused).toEqual([]);
  });

  it('last-position logits of a right-padded batch match transformers, and each sequence alone', () => {
    const g = golden.padded;
    const rows = paddedLastLogits(model, g, tiles);
    const errs = [0, 1].map((b) => relErr(rows[b], g.logits[b]));
    for (const e of errs) expect(e).toBeLessThan(TOL);
    for (const b of [0, 1]) expect(relErr(rows[b], g.logits_unpadded[b])).toBeLessThan(TOL);
    // The scaling matters at these lengths: the default RoPE's logits are far off.
    expect(g.default_vs_llama3_rel_diff).toBeGreaterThan(1e-2);
    for (const b of [0, 1]) expect(relErr(rows[b], g.logits_default_rope[b])).toBeGreaterThan(1e-2);
    process.stdout.write(`llama3 RoPE: max relative error vs transformers ${Math.max(...errs).toExponential(2)}\n`);
  });
});
