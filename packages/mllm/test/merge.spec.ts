/**
 * Merge as PEFT's merge_adapter / unmerge_adapter / safe_merge / merge_and_unload, on a fused
 * Linear with hand-set weights: merged outputs equal W x + scale B A x, computed here by hand;
 * unmerge gives back the base weights; a non-finite merge is refused and changes nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import { EVAL, Linear, LoraAdapter, LoraAdapterError } from '../src';

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
});

/** W [in 3, out 2 + 2] as two parts q (2) and v (2); q gets a LoRA of rank 1 with A, B set by hand. */
function setup() {
  const w = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]; // row-major [3, 4]
  const lin = new Linear(tf.tensor2d(w, [3, 4]), null, [
    { name: 'm.q_proj', out: 2, lora: null },
    { name: 'm.v_proj', out: 2, lora: null },
  ]);
  const adapter = LoraAdapter.attach({ linears: () => [lin] }, { r: 1, alpha: 2, dropout: 0, targetModules: '.*q_proj', init: 'zeros' }, 0);
  const m = adapter.modules[0];
  m.a.assign(tf.tensor2d([1, 0, -1], [3, 1])); // A^T
  m.b.assign(tf.tensor2d([0.5, 2], [1, 2])); // B^T
  return { lin, adapter, w };
}

const x = [[1, 1, 1], [2, 0, 1]];
// By hand: x W = [[15, 18, 21, 24], [11, 14, 17, 20]]; x A^T = [0, 1]; scale 2; delta on q = 2 * [0, 1]^T [0.5, 2].
const EXPECTED = [[15, 18, 21, 24], [12, 18, 17, 20]];

function outputs(lin: Linear): number[][] {
  const parts = lin.apply(tf.tensor2d(x), EVAL);
  return tf.concat(parts, 1).arraySync() as number[][];
}

describe('LoRA merge / unmerge', () => {
  it('merge gives the adapted outputs, leaves nothing to train, and unmerge restores the base', () => {
    const { lin, adapter, w } = setup();
    expect(outputs(lin)).toEqual(EXPECTED);
    adapter.merge();
    expect(adapter.merged).toBe(true);
    expect(adapter.variables()).toHaveLength(0);
    expect(lin.parts[0].lora).toBeNull();
    expect(outputs(lin)).toEqual(EXPECTED);
    adapter.merge(); // no-op when merged
    expect(outputs(lin)).toEqual(EXPECTED);
    adapter.unmerge();
    expect(adapter.merged).toBe(false);
    expect(adapter.variables()).toHaveLength(2);
    expect(Array.from(lin.w.dataSync())).toEqual(w);
    expect(outputs(lin)).toEqual(EXPECTED);
  });

  it('safe merge refuses non-finite weights and leaves the layer unmerged', () => {
    const { lin, adapter, w } = setup();
    adapter.modules[0].b.assign(tf.tensor2d([Infinity, 1], [1, 2]));
    expect(() => adapter.merge()).toThrow(LoraAdapterError);
    expect(() => adapter.merge()).toThrow(/m\.q_proj\|m\.v_proj: merging the LoRA adapter gives non-finite weights/);
    expect(adapter.merged).toBe(false);
    expect(Array.from(lin.w.dataSync())).toEqual(w);
    adapter.merge({ safe: false }); // PEFT's default merge does not check
    expect(Number.isFinite(lin.w.dataSync()[0])).toBe(false);
  });

  it('merge and unload keeps the merged weights and frees the adapter; detach of a merged adapter restores the base', () => {
    const a = setup();
    a.adapter.mergeAndUnload();
    expect(a.adapter.modules).toHaveLength(0);
    expect(a.lin.parts[0].merged).toBeNull();
    expect(outputs(a.lin)).toEqual(EXPECTED);
    const b = setup();
    b.adapter.merge();
    expect(() => LoraAdapter.attach({ linears: () => [b.lin] }, { r: 1, alpha: 1, dropout: 0, targetModules: '.*v_proj', init: 'zeros' }, 0)).toThrow(/holds a merged LoRA adapter/);
    b.adapter.detach();
    expect(Array.from(b.lin.w.dataSync())).toEqual(b.w);
    expect(b.lin.parts[0].lora).toBeNull();
  });
});
