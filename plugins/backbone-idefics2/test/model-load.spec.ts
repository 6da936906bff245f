/**
 * Loading: config.json semantics (transformers defaults, named errors), tensors by name with shape
 * checks, sharded and bf16 checkpoints.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';
import { writeIdefics2Checkpoint } from '../src/checkpoint';
import { parseIdefics2Config } from '../src/model/config';
import { Idefics2Model } from '../src/model/idefics2';

describe('loading IDEFICS2 checkpoints', () => {
  let root: string;
  let tiny: string;
  let config: Record<string, unknown>;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics2-load-'));
    tiny = path.join(root, 'tiny');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: tiny, seed: 0 });
    config = JSON.parse(await fs.readFile(path.join(tiny, 'config.json'), 'utf8'));
  });

  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });

  /** A copy of the tiny checkpoint with config.json replaced. */
  async function withConfig(name: string, cfg: unknown): Promise<string> {
    const dir = path.join(root, name);
    await fs.cp(tiny, dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(cfg));
    return dir;
  }

  const clone = () => JSON.parse(JSON.stringify(config)) as Record<string, Record<string, unknown>>;

  it('a config that omits keys takes transformers defaults (as the released idefics2-8b config.json does)', () => {
    // The sizes of idefics2-8b with everything Mistral / perceiver defaults leave out omitted.
    const c = parseIdefics2Config({
      model_type: 'idefics2',
      image_token_id: 32001,
      vision_config: { model_type: 'idefics2', hidden_size: 1152, image_size: 980, intermediate_size: 4304, num_attention_heads: 16, num_hidden_layers: 27, patch_size: 14 },
      perceiver_config: { model_type: 'idefics2', resampler_n_latents: 64 },
      text_config: { model_type: 'mistral', max_position_embeddings: 32768, pad_token_id: 0, rms_norm_eps: 1e-5, vocab_size: 32003 },
    });
    expect(c.vision).toMatchObject({ hiddenSize: 1152, numPatchesPerSide: 70, headDim: 72, hiddenAct: 'gelu_pytorch_tanh', layerNormEps: 1e-6, numChannels: 3 });
    expect(c.perceiver).toMatchObject({ hiddenSize: 4096, numLatents: 64, depth: 3, numHeads: 16, headDim: 96, numKvHeads: 4, hiddenAct: 'silu', rmsNormEps: 1e-6 });
    expect(c.text).toMatchObject({ hiddenSize: 4096, numLayers: 32, numHeads: 32, numKvHeads: 8, headDim: 128, intermediateSize: 14336, vocabSize: 32003, ropeTheta: 10000, slidingWindow: 4096, rmsNormEps: 1e-5 });
    expect(c.defaulted).toContain('text_config.hidden_size');
    expect(c.defaulted).not.toContain('text_config.vocab_size');
  });

  it('reads rope_theta from transformers 5 rope_parameters and rejects scaled RoPE', () => {
    const c = clone();
    c.text_config.rope_parameters = { rope_type: 'default', rope_theta: 5e5 };
    delete c.text_config.rope_theta;
    expect(parseIdefics2Config(c).text.ropeTheta).toBe(5e5);
    c.text_config.rope_scaling = { rope_type: 'linear', factor: 2 };
    expect(() => parseIdefics2Config(c)).toThrow(/'text_config\.rope_scaling\.rope_type' is "linear"/);
  });

  it.each([
    ['model_type', (c: Record<string, Record<string, unknown>>) => void ((c as Record<string, unknown>).model_type = 'llava'), /'model_type' is "llava"/],
    ['missing model_type', (c: Record<string, Record<string, unknown>>) => void delete (c as Record<string, unknown>).model_type, /'model_type' is missing/],
    ['missing vision_config', (c: Record<string, Record<string, unknown>>) => void delete c.vision_config, /'vision_config' is missing/],
    ['wrong type', (c: Record<string, Record<string, unknown>>) => void (c.text_config.hidden_size = '64'), /'text_config\.hidden_size' must be an integer/],
    ['indivisible heads', (c: Record<string, Record<string, unknown>>) => void (c.vision_config.num_attention_heads = 3), /'vision_config\.hidden_size' 32 is not divisible by vision_config\.num_attention_heads 3/],
    ['activation', (c: Record<string, Record<string, unknown>>) => void (c.text_config.hidden_act = 'swish2'), /'text_config\.hidden_act' is "swish2"/],
    ['text model', (c: Record<string, Record<string, unknown>>) => void (c.text_config.model_type = 'llama'), /'text_config\.model_type' is "llama"/],
  ])('a bad config.json (%s) fails naming the key', async (name, edit, message) => {
    const c = clone();
    edit(c);
    expect(() => parseIdefics2Config(c, 'config.json')).toThrow(message);
    const dir = await withConfig(`bad-${name.replace(/\W/g, '-')}`, c);
    await expect(Idefics2Model.load(dir)).rejects.toThrow(message);
  });

  it('a missing tensor fails naming it and the expected shape', async () => {
    const dir = path.join(root, 'missing');
    await fs.cp(tiny, dir, { recursive: true });
    const file = path.join(dir, 'model.safetensors');
    const st = await SafetensorsFile.open(file);
    const keep = [];
    for (const n of st.names()) if (n !== 'model.text_model.layers.1.mlp.up_proj.weight') keep.push({ name: n, dtype: 'F32' as const, shape: st.entry(n).shape, data: await st.readFloat32(n) });
    await st.close();
    await writeSafetensors(file, keep);
    const before = tf.memory().numTensors;
    await expect(Idefics2Model.load(dir)).rejects.toThrow(/has no tensor 'model\.text_model\.layers\.1\.mlp\.up_proj\.weight' \(expected shape \[128, 64\]/);
    // Everything created before the failure was freed.
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a shape mismatch fails naming the tensor and both shapes', async () => {
    const c = clone();
    c.text_config.intermediate_size = 96;
    const dir = await withConfig('shape', c);
    await expect(Idefics2Model.load(dir)).rejects.toThrow(/tensor 'model\.connector\.modality_projection\.gate_proj\.weight' has shape \[128, 32\] but config\.json implies \[96, 32\]/);
  });

  it('sharded and bf16 checkpoints load; shards give identical logits', async () => {
    const sharded = path.join(root, 'sharded');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: sharded, seed: 0, shardBytes: 200_000 });
    expect((await fs.readdir(sharded)).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(2);
    const bf16 = path.join(root, 'bf16');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: bf16, seed: 0, dtype: 'BF16' });
    const ids = [1, 5, 9, 33, 40, 2];
    const logits = async (dir: string) => {
      const m = await Idefics2Model.load(dir);
      const out = m.forward({ inputIds: ids, batch: 1, seqLen: ids.length });
      const v = out.logits.dataSync().slice();
      out.logits.dispose();
      m.dispose();
      return v;
    };
    const a = await logits(tiny);
    expect(await logits(sharded)).toEqual(a);
    const b = await logits(bf16);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < a.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      maxAbs = Math.max(maxAbs, Math.abs(a[i]));
    }
    // bf16 keeps 8 bits of mantissa: close to, not equal to, the float32 weights.
    expect(maxDiff / maxAbs).toBeLessThan(0.05);
    expect(maxDiff).toBeGreaterThan(0);
  });
});
