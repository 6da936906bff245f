/**
 * The pre-training stand-in (apps/pretrain) on the `tiny` checkpoint and a tiny synthpick
 * set: a few full-parameter updates lower the stage-1 objective on the training examples (measured
 * through the normal backbone plugin on the written checkpoint, not from the trainer's own log),
 * only the connector and text weights move (the vision tower is frozen), the checkpoint loads with
 * no missing or unused tensor, and the same options give the same bytes.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { assemble, memoryLogger, type Backbone } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile } from '@userpref/safetensors';
import { Idefics2Backbone, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { PickapicDataset, generateSynthpick, importDataset } from '@userpref/dataset-pickapic';
import { BasePreferenceLoss, ContrastivePreferenceLoss } from '@userpref/loss-preference';
import { objective } from '@userpref/training';
import { parsePretrainArgs } from '../src/args';
import { PRETRAINING_FILE, pretrainIdefics2, type PretrainOptions } from '../src/pretrain';

let tmp: string;
let base: string;
let data: string;
const logger = memoryLogger();

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-pretrain-test-'));
  base = path.join(tmp, 'tiny-base');
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: base, seed: 3 });
  const raw = path.join(tmp, 'synth-raw');
  data = path.join(tmp, 'synth');
  await generateSynthpick({ preset: 'tiny', seed: 7, outDir: raw, params: { imageSize: 32 } });
  await importDataset({ from: [raw], out: data, seed: 7, logger });
});
afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

const common = (): Omit<PretrainOptions, 'out'> => ({ base, data, steps: 6, batch: 2, lr: 3e-3, seed: 5, refPairNum: 2, imageSize: 32, validationLimit: 4, logger });

/** The stage-1 objective of the first `n` training examples, scored by a backbone from the plugin. */
async function objectiveThroughPlugin(dir: string, n: number): Promise<number> {
  const asm = await assemble({ backbone: { package: '@userpref/backbone-idefics2', name: 'idefics2', options: { path: dir } } }, { logger, seed: 0, baseDir: tmp });
  const backbone = asm.backbone as Backbone;
  await backbone.init();
  const model = (backbone as Idefics2Backbone).idefics2;
  // Every tensor the config implies was found (load throws otherwise) and none was left over.
  expect(model.loadReport.unused).toEqual([]);
  expect(model.loadReport.tensorsRead).toBe((await fileTensors(dir)).size);
  const ds = new PickapicDataset({ path: data, refPairNum: 2, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize: 32, tiePolicy: 'drop' }, { seed: 5, baseDir: tmp });
  await ds.init();
  const split = ds.split('train');
  const examples = await Promise.all(Array.from({ length: n }, (_, i) => split.get(i)));
  const prepared = await backbone.prepare(examples);
  try {
    return tf.tidy(() => {
      const logits = backbone.pairLogits(prepared, { training: false });
      return objective(logits, backbone.readout, [{ loss: new BasePreferenceLoss(), weight: 1 }, { loss: new ContrastivePreferenceLoss(), weight: 1 }]).total.dataSync()[0];
    });
  } finally {
    prepared.dispose();
    (backbone as Idefics2Backbone).dispose();
    await ds.close();
  }
}

async function fileTensors(dir: string): Promise<Map<string, Buffer>> {
  const f = await SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  try {
    const out = new Map<string, Buffer>();
    for (const e of f.entries()) out.set(e.name, Buffer.from(await f.readBytes(e.name)));
    return out;
  } finally {
    await f.close();
  }
}

describe('pretrainIdefics2 (tiny)', () => {
  let out: string;
  let losses: number[];

  beforeAll(async () => {
    out = path.join(tmp, 'pretrained-a');
    const r = await pretrainIdefics2({ ...common(), out });
    losses = r.losses;
    expect(r.steps).toBe(6);
    expect(r.trainedParameters).toBeGreaterThan(0);
  });

  it('a few updates lower the objective on the training examples, measured on the written checkpoint through the plugin', async () => {
    expect(losses).toHaveLength(6);
    expect(losses.every(Number.isFinite)).toBe(true);
    const before = await objectiveThroughPlugin(base, 12);
    const after = await objectiveThroughPlugin(out, 12);
    // The untrained base puts ~1/vocab on "+" and "-": L_base ~ ln(vocab) ~ 6, L_cp ~ 2 ln 2.
    expect(before).toBeGreaterThan(6);
    expect(after).toBeLessThan(before - 1);
  });

  it('moves the connector and text weights, leaves the vision tower exactly as it was, and keeps the HF file set', async () => {
    const a = await fileTensors(base);
    const b = await fileTensors(out);
    expect([...b.keys()]).toEqual([...a.keys()]);
    let changed = 0;
    for (const [name, bytes] of a) {
      const same = bytes.equals(b.get(name)!);
      if (name.startsWith('model.vision_model.')) expect({ name, same }).toEqual({ name, same: true });
      else if (!same) changed++;
    }
    // Every non-vision tensor gets a gradient (norm weights included).
    expect(changed).toBe([...a.keys()].filter((n) => !n.startsWith('model.vision_model.')).length);
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'processor_config.json', 'generation_config.json', PRETRAINING_FILE]) {
      await expect(fs.access(path.join(out, f))).resolves.toBeUndefined();
    }
    const record = JSON.parse(await fs.readFile(path.join(out, PRETRAINING_FILE), 'utf8'));
    expect(record.dataSource.synthetic.seed).toBe(7);
    expect(record.losses).toEqual(losses);
  });

  it('the same options give the same bytes; another seed gives other weights; BF16 is written as BF16', async () => {
    const again = path.join(tmp, 'pretrained-b');
    await pretrainIdefics2({ ...common(), out: again });
    for (const f of ['model.safetensors', 'config.json', PRETRAINING_FILE]) {
      expect((await fs.readFile(path.join(again, f))).equals(await fs.readFile(path.join(out, f)))).toBe(true);
    }
    const other = path.join(tmp, 'pretrained-c');
    await pretrainIdefics2({ ...common(), out: other, seed: 6, steps: 2, dtype: 'BF16', init: 'fan-in' });
    expect((await fs.readFile(path.join(other, 'model.safetensors'))).equals(await fs.readFile(path.join(out, 'model.safetensors')))).toBe(false);
    const f = await SafetensorsFile.open(path.join(other, 'model.safetensors'));
    try {
      expect(new Set(f.entries().map((e) => e.dtype))).toEqual(new Set(['BF16']));
      // init 'fan-in': the text model starts from std 1/sqrt(64) = 0.125, not the checkpoint's 0.02.
      const raw = Buffer.from(await f.readBytes('model.text_model.layers.0.self_attn.q_proj.weight'));
      const bits = new Uint32Array(raw.length / 2);
      for (let i = 0; i < bits.length; i++) bits[i] = raw.readUInt16LE(2 * i) << 16;
      const w = new Float32Array(bits.buffer);
      const mean = w.reduce((a, x) => a + x, 0) / w.length;
      const std = Math.sqrt(w.reduce((a, x) => a + (x - mean) ** 2, 0) / w.length);
      expect(std).toBeGreaterThan(0.1);
      expect(std).toBeLessThan(0.15);
    } finally {
      await f.close();
    }
    expect(JSON.parse(await fs.readFile(path.join(other, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    expect(JSON.parse(await fs.readFile(path.join(other, PRETRAINING_FILE), 'utf8')).options.init).toBe('fan-in');
  });

  it('refuses to write over its base', async () => {
    await expect(pretrainIdefics2({ ...common(), out: base })).rejects.toThrow(/--out must differ from --base/);
  });
});

describe('parsePretrainArgs', () => {
  it('reads the flags of the command', () => {
    const o = parsePretrainArgs(['--base', 'b', '--data', 'd', '--out', 'o', '--steps', '50', '--lr=2e-3', '--batch', '8', '--seed', '1', '--ref-pair-num', '4', '--dtype', 'bf16', '--eval-ref-pairs', '8,0', '--max-prompt-len', 'none']);
    expect(o).toMatchObject({ base: 'b', data: 'd', out: 'o', steps: 50, lr: 2e-3, batch: 8, seed: 1, refPairNum: 4, dtype: 'BF16', evalRefPairs: [8, 0], maxPromptLen: null, init: 'checkpoint' });
    expect(parsePretrainArgs(['--base', 'b', '--data', 'd', '--out', 'o', '--init', 'fan-in']).init).toBe('fan-in');
  });

  it('names the flag at fault', () => {
    expect(() => parsePretrainArgs(['--base', 'b', '--data', 'd'])).toThrow(/--out is required/);
    expect(() => parsePretrainArgs(['--base', 'b', '--data', 'd', '--out', 'o', '--steps', '1.5'])).toThrow(/--steps must be an integer, got '1.5'/);
    expect(() => parsePretrainArgs(['--base', 'b', '--data', 'd', '--out', 'o', '--lrr', '1'])).toThrow(/unknown option --lrr/);
    expect(() => parsePretrainArgs(['--base', 'b', '--data', 'd', '--out', 'o', '--init', 'xavier'])).toThrow(/--init must be checkpoint or fan-in, got 'xavier'/);
  });
});
