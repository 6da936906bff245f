/**
 * Prints the max relative error (max |ours - theirs| / max |theirs|) of every logits golden of
 * goldens/make_idefics3_goldens.py, for the README and reports (the tests only bound them by 1e-5).
 *
 *   node tools/scripts/run-ts.js plugins/backbone-idefics3/bench/golden-errors.ts
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { LoraAdapter } from '@userpref/mllm';
import { initRuntime, runtimeInfo } from '@userpref/runtime';
import { Idefics3Model, processIdefics3Image, type Idefics3ImageConfig, parseIdefics3ImageConfig } from '../src';
import { ARCHS, checkpointDir, readGolden, readImage, relErr } from '../test/fixtures';
import { promises as fs } from 'fs';

async function tiles(images: number[], cfg: Idefics3ImageConfig): Promise<tf.Tensor4D> {
  const parts = [];
  for (const i of images) parts.push(processIdefics3Image(await readImage(i), cfg));
  const M = parts[0].size;
  const data = new Float32Array(parts.reduce((s, p) => s + p.pixelValues.length, 0));
  parts.reduce((off, p) => (data.set(p.pixelValues, off), off + p.pixelValues.length), 0);
  return tf.tensor4d(data, [data.length / (3 * M * M), 3, M, M]);
}

function batch(seqs: number[][], pad: number): { ids: Int32Array; mask: Uint8Array; T: number } {
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(seqs.length * T).fill(pad);
  const mask = new Uint8Array(seqs.length * T);
  seqs.forEach((s, b) => {
    ids.set(s, b * T);
    mask.fill(1, b * T, b * T + s.length);
  });
  return { ids, mask, T };
}

async function main(): Promise<void> {
  await initRuntime({ device: 'cpu' });
  for (const arch of ARCHS) {
    const g = await readGolden(arch);
    const model = await Idefics3Model.load(checkpointDir(arch));
    const proc = JSON.parse(await fs.readFile(path.join(checkpointDir(arch), 'processor_config.json'), 'utf8')) as { image_processor: Record<string, unknown> };
    const cfg = parseIdefics3ImageConfig(proc.image_processor, 'processor_config.json');
    const rows = (t: tf.Tensor2D) => [0, 1].slice(0, t.shape[0]).map((b) => Array.from(tf.slice(t, [b, 0], [1, -1]).dataSync()));
    const errs: Record<string, number> = {};
    let px = await tiles(g.single.images, cfg);
    errs.single = relErr(model.forward(g.single.input_ids, 1, g.single.input_ids.length, px).dataSync(), g.single.logits);
    px = await tiles(g.single.images, { ...cfg, doImageSplitting: false });
    errs.nosplit = relErr(model.forward(g.nosplit.input_ids, 1, g.nosplit.input_ids.length, px).dataSync(), g.nosplit.logits);
    const b = batch(g.padded.input_ids, g.padded.pad_token_id);
    px = await tiles([...g.padded.images[0], ...g.padded.images[1]], cfg);
    const padded = rows(model.forward(b.ids, 2, b.T, px, b.mask));
    errs.padded = Math.max(relErr(padded[0], g.padded.logits[0]), relErr(padded[1], g.padded.logits[1]));
    const adapter = await LoraAdapter.load(model, path.join(checkpointDir(arch), 'peft'));
    const lora = rows(model.forward(b.ids, 2, b.T, px, b.mask));
    errs.peft = Math.max(relErr(lora[0], g.peft.logits[0]), relErr(lora[1], g.peft.logits[1]));
    adapter.detach();
    console.log(JSON.stringify({ arch, backend: runtimeInfo().backend, maxRelativeError: Object.fromEntries(Object.entries(errs).map(([k, v]) => [k, Number(v.toPrecision(2))])) }));
    model.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
