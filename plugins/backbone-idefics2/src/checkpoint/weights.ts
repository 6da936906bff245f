/**
 * The initial values of a random checkpoint's tensors, in the manner of transformers'
 * `_init_weights` as the spec list (model/specs.ts, derived from the parsed config.json) states
 * them per tensor.
 *
 * Each tensor draws from its own named random stream (Rng.stream(seed, name)), so the values of one
 * tensor do not depend on which other tensors exist or in which order they are written.
 */
import { Rng } from '@userpref/core';
import { numel, type TensorSpec } from '@userpref/mllm';

export { numel } from '@userpref/mllm';
export type { TensorSpec, TensorInit as Init } from '@userpref/mllm';
export { idefics2TensorSpecs } from '../model/specs';

/** The initial values of one tensor, deterministic in (seed, name). */
export function initTensor(spec: TensorSpec, seed: number): Float32Array {
  const n = numel(spec.shape);
  const out = new Float32Array(n);
  switch (spec.init.kind) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'normal':
    case 'embedding': {
      const rng = Rng.stream(seed, spec.name);
      const std = spec.init.std;
      for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
      if (spec.init.kind === 'embedding' && spec.init.paddingRow !== null) {
        const row = spec.init.paddingRow;
        const width = spec.shape[1];
        if (row < 0 || row >= spec.shape[0]) throw new Error(`${spec.name}: padding row ${row} outside [0, ${spec.shape[0]})`);
        out.fill(0, row * width, (row + 1) * width);
      }
      return out;
    }
  }
}
