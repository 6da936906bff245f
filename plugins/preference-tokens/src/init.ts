/**
 * Initial values of preference tokens. The paper draws U(0, 1) (torch.rand); 'normal' and 'zeros'
 * are there for ablations. Values come from the run's seeded Rng through a stream named after
 * the tensor, so they depend only on the seed and the name, never on other draws in the run.
 */
import { Rng } from '@userpref/core';
import type { InitOptions } from './options';

export type { InitOptions, TokenInit } from './options';

export function initialValues(size: number, options: InitOptions, seed: number, stream: string): Float32Array {
  const out = new Float32Array(size);
  if (options.init === 'zeros') return out;
  const rng = Rng.stream(seed, stream);
  if (options.init === 'uniform') {
    for (let i = 0; i < size; i++) out[i] = rng.uniform();
    // float32 rounding could turn a draw just below 1 into exactly 1; keep the half-open range.
    for (let i = 0; i < size; i++) if (out[i] >= 1) out[i] = 1 - 2 ** -24;
    return out;
  }
  if (options.init === 'normal') {
    if (!(options.std >= 0) || !Number.isFinite(options.std)) throw new Error(`preference tokens: std must be a finite number >= 0, got ${options.std}`);
    for (let i = 0; i < size; i++) out[i] = rng.normal() * options.std;
    return out;
  }
  throw new Error(`preference tokens: unknown init '${String(options.init)}' (expected uniform, normal or zeros)`);
}
