/**
 * SPEC-shaped synthetic examples for the benches: `refs` reference pairs + a target, random RGB
 * images of a few sizes (so the processor pads), prompts of realistic length (cut at maxPromptLen).
 */
import { createHash } from 'crypto';
import type { PreferenceExample, PreferenceImage, RgbImage } from '@userpref/core';

export function benchImage(seed: number, width = 96, height = 80): PreferenceImage {
  const data = new Uint8Array(width * height * 3);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  const id = createHash('sha256').update(data).update(`${width}x${height}`).digest('hex');
  return { id, decode: async (): Promise<RgbImage> => ({ width, height, data }) };
}

const WORDS = ['a', 'portrait', 'of', 'cat', 'in', 'the', 'style', 'van', 'gogh', 'neon', 'city', 'at', 'night', 'highly', 'detailed', 'cinematic', 'lighting', 'castle', 'on', 'hill'];

export function benchPrompt(seed: number, words = 16): string {
  return Array.from({ length: words }, (_, i) => WORDS[(seed * 7 + i * 3 + ((seed * i) % 5)) % WORDS.length]).join(' ');
}

/** Example `i`: user-specific references (images seeded by i) and target. */
export function benchExample(i: number, refs: number, label0 = 1): PreferenceExample {
  const references = Array.from({ length: refs }, (_, r) => ({
    prompt: benchPrompt(i * 31 + r),
    liked: benchImage(i * 1000 + 2 * r, 96 + 8 * (r % 3), 80),
    disliked: benchImage(i * 1000 + 2 * r + 1, 80, 96),
  }));
  return {
    userId: `u${i}`,
    references,
    likedFirst: references.map((_, r) => r % 2 === 0),
    target: { prompt: benchPrompt(i * 31 + 999), image0: benchImage(i * 1000 + 900, 100, 100), image1: benchImage(i * 1000 + 901, 72, 90), label0 },
  };
}
