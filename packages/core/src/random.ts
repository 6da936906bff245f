/**
 * Seeded randomness for the whole run: one seed in config, independent named streams derived
 * from it (so adding a draw in one place does not shift another), and a serialisable state so a
 * resumed run continues the same sequence.
 */
import { xoroshiro128plus, xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';

type Gen = ReturnType<typeof xoroshiro128plus>;

/** FNV-1a 32-bit hash of a label, to derive stream seeds. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export class Rng {
  private gen: Gen;
  private spareNormal: number | null = null;

  private constructor(gen: Gen) {
    this.gen = gen;
  }

  static fromSeed(seed: number): Rng {
    if (!Number.isFinite(seed)) throw new Error(`seed must be a finite number, got ${seed}`);
    return new Rng(xoroshiro128plus(seed | 0));
  }

  static fromState(state: readonly number[]): Rng {
    return new Rng(xoroshiro128plusFromState(state));
  }

  /** An independent stream named `label`, derived from `seed`. */
  static stream(seed: number, label: string): Rng {
    return new Rng(xoroshiro128plus((seed | 0) ^ hashLabel(label)));
  }

  state(): number[] {
    return [...this.gen.getState()];
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return uniformFloat64(this.gen);
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (n <= 0) throw new Error(`Rng.int needs n > 0, got ${n}`);
    return uniformInt(this.gen, 0, n - 1);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  bernoulli(p: number): boolean {
    return this.uniform() < p;
  }

  /** Fisher-Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** `k` distinct indices from [0, n), in draw order. */
  sample(n: number, k: number): number[] {
    if (k > n) throw new Error(`cannot sample ${k} distinct items from ${n}`);
    const idx = [...Array(n).keys()];
    for (let i = 0; i < k; i++) {
      const j = i + this.int(n - i);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx.slice(0, k);
  }

  /**
   * A new seed for a library that takes one (e.g. tf.randomNormal). Never 0: tfjs treats a seed
   * of 0 as "no seed" and draws from Math.random.
   */
  seed(): number {
    return uniformInt(this.gen, 1, 0x7fffffff);
  }
}
