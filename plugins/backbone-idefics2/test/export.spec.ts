/**
 * Export of the base weights back to Hugging Face names and layouts (src/model/export.ts) and
 * full-parameter trainability (src/model/trainable.ts): exporting a freshly loaded checkpoint
 * reproduces the file's tensors bit for bit (F32 and BF16, the same bytes as the original file),
 * a changed model survives save -> load with identical logits, and gradients reach the base
 * weights once they are variables.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile } from '@userpref/safetensors';
import { writeIdefics2Checkpoint } from '../src/checkpoint';
import { Idefics2Model } from '../src/model/idefics2';
import { LoraAdapter } from '@userpref/mllm';
import { fanInReinit } from '../src/model/trainable';
import { recipeBatch } from './model-fixtures';

let root: string;

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics2-export-'));
});
afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

async function rawTensors(file: string): Promise<Map<string, { dtype: string; shape: number[]; bytes: Buffer }>> {
  const f = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
    for (const e of f.entries()) out.set(e.name, { dtype: e.dtype, shape: [...e.shape], bytes: Buffer.from(await f.readBytes(e.name)) });
    return out;
  } finally {
    await f.close();
  }
}

/** A one-sequence batch with one image: BOS, text, <fake><image>*latents<fake>, text. */
function sampleInputs(model: Idefics2Model, seed: number): { inputIds: number[]; pixelValues: tf.Tensor4D } {
  const c = model.config;
  const ids = [1, 17, 42, 5];
  for (let i = 0; i < c.perceiver.numLatents; i++) ids.push(c.imageTokenId);
  ids.push(99, 7, 123, 8);
  const side = c.vision.imageSize;
  const pixelValues = tf.randomUniform([1, 3, side, side], -1, 1, 'float32', seed) as tf.Tensor4D;
  return { inputIds: ids, pixelValues };
}

function logitsOf(model: Idefics2Model, inputs: { inputIds: number[]; pixelValues: tf.Tensor4D }): Float32Array {
  const out = model.forward({ inputIds: inputs.inputIds, batch: 1, seqLen: inputs.inputIds.length, pixelValues: inputs.pixelValues });
  const v = out.logits.dataSync() as Float32Array;
  out.logits.dispose();
  return v;
}

describe('exportWeights / saveCheckpoint', () => {
  it('export after load reproduces every tensor of the F32 file bit for bit, and the file itself', async () => {
    const src = path.join(root, 'tiny-f32');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: src, seed: 11 });
    const model = await Idefics2Model.load(src);
    try {
      const original = await rawTensors(path.join(src, 'model.safetensors'));
      const exported = model.exportWeights();
      expect(exported.map((t) => t.name).sort()).toEqual([...original.keys()].sort());
      for (const t of exported) {
        const o = original.get(t.name)!;
        expect({ name: t.name, shape: t.shape }).toEqual({ name: t.name, shape: o.shape });
        // Compare bits, not values: -0 / NaN patterns must survive too.
        const bits = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        if (!bits.equals(o.bytes)) throw new Error(`tensor ${t.name} differs after export`);
      }
      const out = path.join(root, 'tiny-f32-export');
      await model.saveCheckpoint(out);
      // Same tensor order and header as the writer: the whole file is the same bytes.
      expect((await fs.readFile(path.join(out, 'model.safetensors'))).equals(await fs.readFile(path.join(src, 'model.safetensors')))).toBe(true);
      // Every other file is copied; config.json keeps its content (torch_dtype already float32).
      const names = (await fs.readdir(src)).sort();
      expect((await fs.readdir(out)).sort()).toEqual(names);
      for (const n of names) {
        if (n === 'model.safetensors') continue;
        const a = await fs.readFile(path.join(src, n), 'utf8');
        const b = await fs.readFile(path.join(out, n), 'utf8');
        if (n === 'config.json') expect(JSON.parse(b)).toEqual(JSON.parse(a));
        else expect(b).toBe(a);
      }
    } finally {
      model.dispose();
    }
  });

  it('a BF16 checkpoint saved as BF16 is the same bytes; sharded sources export to the same tensors', async () => {
    const src = path.join(root, 'tiny-bf16');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: src, seed: 12, dtype: 'BF16', shardBytes: 200_000 });
    const shards = (await fs.readdir(src)).filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(1);
    const model = await Idefics2Model.load(src);
    try {
      const out = path.join(root, 'tiny-bf16-export');
      await model.saveCheckpoint(out, { dtype: 'BF16', maxShardBytes: 200_000 });
      for (const f of shards) expect((await fs.readFile(path.join(out, f))).equals(await fs.readFile(path.join(src, f)))).toBe(true);
      expect(JSON.parse(await fs.readFile(path.join(out, 'model.safetensors.index.json'), 'utf8'))).toEqual(JSON.parse(await fs.readFile(path.join(src, 'model.safetensors.index.json'), 'utf8')));
      // As F32 in one file: config.json says so, and the values are the bf16 values widened.
      const f32 = path.join(root, 'tiny-bf16-as-f32');
      await model.saveCheckpoint(f32);
      expect(JSON.parse(await fs.readFile(path.join(f32, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
      expect(JSON.parse(await fs.readFile(path.join(f32, 'config.json'), 'utf8')).text_config.torch_dtype).toBe('float32');
      const t = await rawTensors(path.join(f32, 'model.safetensors'));
      const name = 'model.text_model.layers.1.mlp.down_proj.weight';
      const e = t.get(name)!;
      expect(e.dtype).toBe('F32');
      const widened = new Uint32Array(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength / 4);
      // bf16 -> f32 leaves the low 16 bits zero.
      expect(widened.every((w) => (w & 0xffff) === 0)).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it('after the weights change, save -> load gives identical logits; the original checkpoint gives different ones', async () => {
    const src = path.join(root, 'tiny-train');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: src, seed: 13 });
    const model = await Idefics2Model.load(src);
    const inputs = sampleInputs(model, 5);
    try {
      const before = logitsOf(model, inputs);
      const vars = model.trainableBaseVariables({ includeVision: true });
      // Idempotent: a second call hands back the same variables.
      expect(model.trainableBaseVariables({ includeVision: true }).map((w) => w.variable)).toEqual(vars.map((w) => w.variable));
      expect(logitsOf(model, inputs)).toEqual(before);
      vars.forEach((w, i) => w.variable.assign(tf.tidy(() => tf.add(w.variable, tf.randomNormal(w.variable.shape, 0, 0.02, 'float32', 100 + i)))));
      const changed = logitsOf(model, inputs);
      expect(changed).not.toEqual(before);
      const out = path.join(root, 'tiny-train-export');
      await model.saveCheckpoint(out);
      const reloaded = await Idefics2Model.load(out);
      try {
        expect(reloaded.loadReport.unused).toEqual([]);
        expect(logitsOf(reloaded, inputs)).toEqual(changed);
      } finally {
        reloaded.dispose();
      }
    } finally {
      inputs.pixelValues.dispose();
      model.dispose();
    }
  });

  it('fan-in re-initialisation: torch.nn.Linear scales, calm residual outputs, and images that differ', async () => {
    const src = path.join(root, 'tiny-reinit');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: src, seed: 3 });
    const model = await Idefics2Model.load(src);
    const { pixelValues, mask } = recipeBatch([0, 5], [[32, 32]], 32);
    /** |connector(image 0) - connector(image 5)| / |mean of the two|: how much two images differ for the text model. */
    const spread = () =>
      tf.tidy(() => {
        const vis = model.visionTower(pixelValues, mask);
        const c = model.connector(vis.hidden, vis.patchValid);
        const [a, b] = tf.split(c, 2, 0);
        return tf.div(tf.norm(tf.sub(a, b)), tf.norm(tf.div(tf.add(a, b), 2))).dataSync()[0];
      });
    const visionOut = () => tf.tidy(() => Array.from(model.visionTower(pixelValues, mask).hidden.dataSync()));
    try {
      const vision = visionOut();
      const before = spread();
      const weights = model.trainableBaseVariables();
      const embed = weights.find((w) => w.name === 'model.text_model.embed_tokens.weight')!.variable.dataSync().slice();
      expect(fanInReinit(weights, model.config, 1)).toBe(weights.filter((w) => w.name.endsWith('(weight [in, out])')).length);
      const after = spread();
      // The 0.02 checkpoint scale washes images out at width 64; fan-in scaling does not.
      expect(before).toBeLessThan(0.05);
      expect(after).toBeGreaterThan(5 * before);
      expect(visionOut()).toEqual(vision);
      expect(Array.from(weights.find((w) => w.name === 'model.text_model.embed_tokens.weight')!.variable.dataSync())).toEqual(Array.from(embed));
      const std = (name: string) => {
        const v = weights.find((w) => w.name.includes(name))!.variable;
        return { fanIn: v.shape[0], std: tf.tidy(() => tf.moments(v).variance.sqrt().dataSync()[0]) };
      };
      const q = std('layers.0.self_attn.q_proj');
      expect(q.std).toBeCloseTo(1 / Math.sqrt(q.fanIn), 2);
      const o = std('layers.1.self_attn.o_proj');
      expect(o.std).toBeCloseTo(1 / Math.sqrt(o.fanIn) / Math.sqrt(2 * model.config.text.numLayers), 2);
      // Deterministic from the seed.
      const first = weights[0].variable.dataSync().slice();
      fanInReinit(weights, model.config, 1);
      expect(Array.from(weights[0].variable.dataSync())).toEqual(Array.from(first));
    } finally {
      pixelValues.dispose();
      model.dispose();
    }
  });

  it('gradients reach the variables (vision tower excluded by default), and the list order is fixed', async () => {
    const src = path.join(root, 'tiny-train');
    const model = await Idefics2Model.load(src);
    const inputs = sampleInputs(model, 6);
    try {
      const weights = model.trainableBaseVariables();
      expect(weights.some((w) => w.name.includes('vision_model'))).toBe(false);
      expect(weights[0].name).toBe('model.connector.modality_projection.gate_proj|model.connector.modality_projection.up_proj (weight [in, out])');
      expect(weights[weights.length - 1].name).toBe('lm_head (weight [in, out])');
      const { grads } = tf.variableGrads(() => {
        const out = model.forward({ inputIds: inputs.inputIds, batch: 1, seqLen: inputs.inputIds.length, pixelValues: inputs.pixelValues });
        return tf.sum(tf.square(out.logits)) as tf.Scalar;
      }, weights.map((w) => w.variable));
      for (const w of weights) {
        const g = grads[w.variable.name];
        if (!g) throw new Error(`no gradient for ${w.name}`);
        const norm = tf.tidy(() => tf.norm(g).dataSync()[0]);
        if (!(norm > 0)) throw new Error(`zero gradient for ${w.name}`);
      }
      tf.dispose(Object.values(grads));
    } finally {
      inputs.pixelValues.dispose();
      model.dispose();
    }
  });

  it('refuses a model with an attached LoRA adapter, and refuses to overwrite its own directory', async () => {
    const src = path.join(root, 'tiny-train');
    const model = await Idefics2Model.load(src);
    try {
      await expect(model.saveCheckpoint(src)).rejects.toThrow(/refusing to overwrite/);
      const adapter = LoraAdapter.attach(model, { r: 2, alpha: 2, dropout: 0, targetModules: '.*text_model.*q_proj', init: 'gaussian' }, 0);
      expect(() => model.exportWeights()).toThrow(/model\.text_model\.layers\.0\.self_attn\.q_proj' has a LoRA adapter attached/);
      adapter.detach();
      expect(model.exportWeights().length).toBeGreaterThan(0);
    } finally {
      model.dispose();
    }
  });
});
