/**
 * Synthetic images and examples of varied sizes for the backbone tests that compare two
 * computations of the same thing (shared prefix vs full sequences, cache vs none, padded vs
 * alone): any pixels do, no golden depends on them. Each spec keeps its own recipe constants so
 * its images stay the ones it was written with.
 */
import { createHash } from 'crypto';
import type { PreferenceExample, PreferenceImage, RgbImage } from '@userpref/core';

/** data[i] = (i * (2 seed + step) + seed * add + floor(i / every)) mod 256 */
export interface PixelRecipe {
  readonly step: number;
  readonly add: number;
  readonly every: number;
}

export function syntheticImage(seed: number, width: number, height: number, r: PixelRecipe): PreferenceImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * (seed * 2 + r.step) + seed * r.add + ((i / r.every) | 0)) % 256;
  const id = createHash('sha256').update(data).update(`${width}x${height}`).digest('hex');
  return { id, decode: async (): Promise<RgbImage> => ({ width, height, data }) };
}

export interface SyntheticExampleOptions {
  /** Reference prompts are `${prompt} ${i}`. */
  readonly prompt: string;
  readonly targetPrompt: string;
  /** Which references show the liked image first: those with an even or an odd index. */
  readonly likedFirst: 'even' | 'odd';
  /** Seed of the target images (default: the example's seed). */
  readonly targetSeed?: number;
  readonly recipe: PixelRecipe;
}

/** `refs` reference pairs of mixed sizes (40 x 30+i liked, 33 x 48 disliked) and a 36x36 / 50x28 target. */
export function syntheticExample(user: string, refs: number, seed: number, label0: number, o: SyntheticExampleOptions): PreferenceExample {
  const img = (s: number, w: number, h: number) => syntheticImage(s, w, h, o.recipe);
  const references = Array.from({ length: refs }, (_, i) => ({
    prompt: `${o.prompt} ${i}`,
    liked: img(seed * 100 + 2 * i, 40, 30 + i),
    disliked: img(seed * 100 + 2 * i + 1, 33, 48),
  }));
  const t = o.targetSeed ?? seed;
  return {
    userId: user,
    references,
    likedFirst: references.map((_, i) => (i % 2 === 0) === (o.likedFirst === 'even')),
    target: { prompt: o.targetPrompt, image0: img(t * 100 + 90, 36, 36), image1: img(t * 100 + 91, 50, 28), label0 },
  };
}
