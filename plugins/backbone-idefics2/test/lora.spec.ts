/**
 * LoRA with PEFT semantics: adapters made by PEFT load and give PEFT's logits (goldens:
 * goldens/make_peft_goldens.py), ours save in PEFT's layout, merge equals PEFT's
 * merge_and_unload, gradients w.r.t. A and B agree with central finite differences.
 */
import { spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';
import { LoraAdapter, parseAdapterConfig, parsePeftKey, targetMatcher } from '@userpref/mllm';
import { PAPER_LORA, PAPER_TARGET_MODULES } from '../src/lora';
import { Idefics2Model } from '../src/model/idefics2';
import { GOLDEN_DIR, checkFingerprint, goldenPaddedInputs, readGolden, recipeBatch, relErr, tinyCheckpoint, type ModelGolden } from './model-fixtures';

interface PeftGolden {
  modules: string[];
  logits: number[][];
  logits_merged: number[][];
}

const TOL = 1e-5;

describe('LoRA (PEFT semantics) on the tiny IDEFICS2', () => {
  let dir: string;
  let tmp: string;
  let golden: ModelGolden;
  let peft: PeftGolden;
  let model: Idefics2Model;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = await readGolden<ModelGolden>('idefics2_tiny.json');
    peft = await readGolden<PeftGolden>('peft_tiny.json');
    dir = await tinyCheckpoint();
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'lora-spec-'));
    await checkFingerprint(dir, golden.fingerprint);
    model = await Idefics2Model.load(dir);
  });

  afterAll(async () => {
    model?.dispose();
    for (const d of [dir, tmp]) if (d) await fs.rm(d, { recursive: true, force: true });
  });

  /** The padded batch of the goldens: logits [2, vocab]. */
  function paddedLogits(training = false, seed?: number): number[][] {
    const g = golden.padded;
    const { ids, am, T, pixelValues, mask } = goldenPaddedInputs(golden);
    const out = model.forward({ inputIds: ids, batch: 2, seqLen: T, attentionMask: am, pixelValues, pixelAttentionMask: mask }, { ctx: { training, seed } });
    const v = out.logits.arraySync();
    tf.dispose([out.logits, pixelValues]);
    return v;
  }

  it('targets exactly the modules PEFT adapts with the paper regex (re.fullmatch)', () => {
    const adapter = LoraAdapter.attach(model, PAPER_LORA, 1);
    expect(adapter.modules.map((m) => m.name).sort()).toEqual(peft.modules);
    expect(adapter.variables()).toHaveLength(2 * peft.modules.length);
    adapter.detach();
    const m = targetMatcher(PAPER_TARGET_MODULES);
    expect(m('model.vision_model.encoder.layers.0.self_attn.q_proj')).toBe(false);
    expect(m('model.text_model.layers.0.self_attn.q_proj')).toBe(true);
    // A list matches whole names or "." + suffix, as PEFT does.
    const list = targetMatcher(['q_proj']);
    expect(list('model.vision_model.encoder.layers.0.self_attn.q_proj')).toBe(true);
    expect(list('model.text_model.layers.0.self_attn.xq_proj')).toBe(false);
  });

  it('gaussian init: A ~ N(0, std 1/r), B = 0, so the logits are the base model\'s', () => {
    const base = paddedLogits();
    const adapter = LoraAdapter.attach(model, { ...PAPER_LORA, r: 8 }, 7);
    const a = tf.tidy(() => tf.concat(adapter.modules.map((mod) => tf.reshape(mod.a, [-1]))).dataSync());
    let s2 = 0;
    for (const x of a) s2 += x * x;
    const std = Math.sqrt(s2 / a.length);
    expect(Math.abs(std - 1 / 8) / (1 / 8)).toBeLessThan(0.05);
    for (const mod of adapter.modules) expect(tf.tidy(() => tf.max(tf.abs(mod.b)).dataSync()[0])).toBe(0);
    expect(paddedLogits()).toEqual(base);
    adapter.detach();
  });

  it("loads PEFT's saved adapter and reproduces PEFT's logits", async () => {
    const adapter = await LoraAdapter.load(model, path.join(GOLDEN_DIR, 'peft_tiny'));
    expect(adapter.settings).toMatchObject({ r: 8, alpha: 8, dropout: 0.1, targetModules: PAPER_TARGET_MODULES });
    const logits = paddedLogits();
    for (let b = 0; b < 2; b++) expect(relErr(logits[b], peft.logits[b])).toBeLessThan(TOL);
    adapter.detach();
  });

  it('saves in PEFT layout (same tensor names and shapes as PEFT writes) and reloads to the same logits', async () => {
    const adapter = await LoraAdapter.load(model, path.join(GOLDEN_DIR, 'peft_tiny'));
    const out = path.join(tmp, 'ours');
    await adapter.save(out, dir);
    const ours = await SafetensorsFile.open(path.join(out, 'adapter_model.safetensors'));
    const theirs = await SafetensorsFile.open(path.join(GOLDEN_DIR, 'peft_tiny', 'adapter_model.safetensors'));
    const shapes = (f: SafetensorsFile) => Object.fromEntries(f.names().map((n) => [n, f.entry(n).shape]));
    expect(shapes(ours)).toEqual(shapes(theirs));
    for (const n of theirs.names().slice(0, 6)) expect(await ours.readFloat32(n)).toEqual(await theirs.readFloat32(n));
    await ours.close();
    await theirs.close();
    const cfg = JSON.parse(await fs.readFile(path.join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 8, lora_alpha: 8, lora_dropout: 0.1, bias: 'none', target_modules: PAPER_TARGET_MODULES, base_model_name_or_path: dir });
    const logits = paddedLogits();
    adapter.detach();
    const again = await LoraAdapter.load(model, out);
    expect(paddedLogits()).toEqual(logits);
    // Optional cross-check in Python: PEFT and transformers' load_adapter read our directory.
    await fs.writeFile(path.join(out, 'ours_logits.json'), JSON.stringify({ logits }));
    if (process.env.USERPREF_PEFT_VERIFY_DIR) await fs.cp(out, process.env.USERPREF_PEFT_VERIFY_DIR, { recursive: true });
    const py = process.env.USERPREF_PEFT_PYTHON;
    if (py) {
      const script = path.join(__dirname, '..', '..', '..', 'tools', 'goldens', 'make_peft_goldens.py');
      const r = spawnSync(py, [script, '--checkpoint', dir, '--verify', out, '--golden', path.join(GOLDEN_DIR, 'idefics2_tiny.json')], { encoding: 'utf8' });
      expect(r.stdout).toContain('OK');
    }
    again.detach();
  });

  it("accepts transformers' add_adapter key names (no base_model.model. prefix)", async () => {
    expect(parsePeftKey('base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_A.weight')).toEqual({ module: 'model.text_model.layers.0.self_attn.q_proj', which: 'A' });
    expect(parsePeftKey('model.text_model.layers.0.mlp.down_proj.lora_B.weight')).toEqual({ module: 'model.text_model.layers.0.mlp.down_proj', which: 'B' });
    expect(parsePeftKey('model.text_model.layers.0.mlp.down_proj.lora_B.default.weight')).toEqual({ module: 'model.text_model.layers.0.mlp.down_proj', which: 'B' });
    // Rewrite PEFT's file without the prefix and load it.
    const src = path.join(GOLDEN_DIR, 'peft_tiny');
    const out = path.join(tmp, 'unprefixed');
    await fs.mkdir(out, { recursive: true });
    await fs.copyFile(path.join(src, 'adapter_config.json'), path.join(out, 'adapter_config.json'));
    const f = await SafetensorsFile.open(path.join(src, 'adapter_model.safetensors'));
    const tensors = [];
    for (const n of f.names()) tensors.push({ name: n.replace(/^base_model\.model\./, ''), dtype: 'F32' as const, shape: f.entry(n).shape, data: await f.readFloat32(n) });
    await f.close();
    await writeSafetensors(path.join(out, 'adapter_model.safetensors'), tensors);
    const adapter = await LoraAdapter.load(model, out);
    const logits = paddedLogits();
    for (let b = 0; b < 2; b++) expect(relErr(logits[b], peft.logits[b])).toBeLessThan(TOL);
    adapter.detach();
  });

  it("merging gives PEFT's merge_and_unload logits and frees the adapter", async () => {
    const m2 = await Idefics2Model.load(dir);
    const saved = model;
    model = m2;
    try {
      const adapter = await LoraAdapter.load(model, path.join(GOLDEN_DIR, 'peft_tiny'));
      adapter.merge();
      expect(adapter.variables()).toHaveLength(0);
      expect(model.linears().every((l) => l.parts.every((p) => p.lora === null))).toBe(true);
      const logits = paddedLogits();
      for (let b = 0; b < 2; b++) expect(relErr(logits[b], peft.logits_merged[b])).toBeLessThan(TOL);
    } finally {
      model = saved;
      m2.dispose();
    }
  });

  it('adapter errors name the file and the key or tensor', async () => {
    const bad = path.join(tmp, 'bad');
    await fs.mkdir(bad, { recursive: true });
    const cfg = JSON.parse(await fs.readFile(path.join(GOLDEN_DIR, 'peft_tiny', 'adapter_config.json'), 'utf8'));
    expect(() => parseAdapterConfig({ ...cfg, use_dora: true }, 'x.json')).toThrow(/x\.json: 'use_dora'/);
    expect(() => parseAdapterConfig({ ...cfg, peft_type: 'IA3' }, 'x.json')).toThrow(/'peft_type'/);
    expect(() => parseAdapterConfig({ ...cfg, r: 'eight' }, 'x.json')).toThrow(/'r' must be a number/);
    // r in the config disagrees with the tensors.
    await fs.writeFile(path.join(bad, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 4 }));
    await fs.copyFile(path.join(GOLDEN_DIR, 'peft_tiny', 'adapter_model.safetensors'), path.join(bad, 'adapter_model.safetensors'));
    await expect(LoraAdapter.load(model, bad)).rejects.toThrow(/tensor 'base_model\.model\.model\.\S+lora_A\.weight' has shape \[8, \d+\] but the model and r=4 need \[4, \d+\]/);
    // Targets that select fewer modules than the file holds.
    await fs.writeFile(path.join(bad, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: '.*text_model.*q_proj' }));
    await expect(LoraAdapter.load(model, bad)).rejects.toThrow(/belongs to module 'model\.connector\.\S+', which .* does not select/);
    expect(model.linears().every((l) => l.parts.every((p) => p.lora === null))).toBe(true);
  });

  it('dropout is active only in training and reproducible from the seed', async () => {
    const adapter = await LoraAdapter.load(model, path.join(GOLDEN_DIR, 'peft_tiny'));
    const evalL = paddedLogits(false);
    const t1 = paddedLogits(true, 123);
    const t2 = paddedLogits(true, 123);
    const t3 = paddedLogits(true, 124);
    expect(t1).toEqual(t2);
    expect(relErr(t1[0], evalL[0])).toBeGreaterThan(1e-6);
    expect(relErr(t3[0], t1[0])).toBeGreaterThan(1e-6);
    adapter.detach();
  });

  it('gradients of a scalar loss w.r.t. LoRA A and B match central finite differences', () => {
    const adapter = LoraAdapter.attach(model, { ...PAPER_LORA, dropout: 0 }, 3);
    // B nonzero so that dL/dA is nonzero.
    for (const [i, mod] of adapter.modules.entries()) mod.b.assign(tf.mul(tf.randomNormal(mod.b.shape, 0, 1, 'float32', 100 + i), 0.05) as tf.Tensor2D);
    const g = golden.padded;
    const ids = g.input_ids[0];
    const { pixelValues, mask } = recipeBatch(g.images[0], golden.image_sizes, golden.image_size);
    const weights = tf.randomNormal([1, model.config.text.vocabSize], 0, 1, 'float32', 9);
    const loss = () =>
      tf.tidy(() => {
        const out = model.forward({ inputIds: ids, batch: 1, seqLen: ids.length, pixelValues, pixelAttentionMask: mask });
        return tf.sum(tf.mul(out.logits, weights)) as tf.Scalar;
      });
    // One text, one perceiver and one modality-projection module; A and B of each.
    const picks = ['model.text_model.layers.1.self_attn.v_proj', 'model.connector.perceiver_resampler.layers.0.mlp.down_proj', 'model.connector.modality_projection.gate_proj'];
    const vars = picks.flatMap((name) => {
      const mod = adapter.modules.find((m) => m.name === name)!;
      return [mod.a, mod.b];
    });
    const { grads } = tf.variableGrads(loss, vars);
    // Directional derivatives (float32 finite differences are too noisy entry by entry): along
    // the gradient itself (d/dt = |g|) and along a random direction (d/dt = <g, u>).
    for (const [k, v] of vars.entries()) {
      // A step of 2% of the variable's norm: large enough to rise above float32 rounding of the
      // loss, small enough that the O(eps^2) error of central differences stays below 1e-3.
      const eps = 0.02 * tf.tidy(() => tf.norm(v).dataSync()[0]);
      const g = grads[v.name];
      const base = tf.clone(v);
      const directions = tf.tidy(() => {
        const along = tf.div(g, tf.norm(g));
        const rnd = tf.randomNormal(g.shape, 0, 1, 'float32', 50 + k);
        const mixed = tf.add(along, tf.div(rnd, tf.norm(rnd)));
        return [along, tf.div(mixed, tf.norm(mixed))];
      });
      for (const u of directions) {
        const at = (t: number) => {
          v.assign(tf.tidy(() => tf.add(base, tf.mul(u, t))) as tf.Tensor2D);
          const l = loss();
          const x = l.dataSync()[0];
          l.dispose();
          return x;
        };
        const fd = (at(eps) - at(-eps)) / (2 * eps);
        const analytic = tf.tidy(() => tf.sum(tf.mul(g, u)).dataSync()[0]);
        expect({ name: v.name, rel: Math.abs(fd - analytic) / Math.abs(analytic) < 3e-3 }).toEqual({ name: v.name, rel: true });
      }
      v.assign(base as tf.Tensor2D);
      tf.dispose([base, ...directions]);
    }
    tf.dispose([...Object.values(grads), pixelValues, weights]);
    adapter.detach();
  });
});
