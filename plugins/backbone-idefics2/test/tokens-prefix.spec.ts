/**
 * Issue 6 plumbing: the `prompt` preference tokens of @userpref/preference-tokens as the backbone's
 * prefix provider. Padding must not move a score (the original's all-ones mask and index -1 read
 * did, SPEC §8): an example scored alone and scored next to a longer example (so it is right
 * padded) gives the same logits; and the prefix must reach the logits at all.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { PreferenceExample, PreferenceImage, RgbImage } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { PromptTokens } from '@userpref/preference-tokens';
import { Idefics2Backbone } from '../src';
import { tinyCheckpoint } from './model-fixtures';

function image(seed: number, width: number, height: number): PreferenceImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * (seed * 5 + 1) + seed * 31 + ((i / 11) | 0)) % 256;
  const id = createHash('sha256').update(data).update(`${width}x${height}`).digest('hex');
  return { id, decode: async (): Promise<RgbImage> => ({ width, height, data }) };
}

function example(user: string, refs: number, seed: number, label0: number, prompt: string): PreferenceExample {
  const references = Array.from({ length: refs }, (_, i) => ({
    prompt: `${prompt} ${i}`,
    liked: image(seed * 100 + 2 * i, 36, 30),
    disliked: image(seed * 100 + 2 * i + 1, 30, 40),
  }));
  return {
    userId: user,
    references,
    likedFirst: references.map(() => false),
    target: { prompt, image0: image(seed * 100 + 90, 32, 32), image1: image(seed * 100 + 91, 40, 28), label0 },
  };
}

describe('prompt preference tokens as the backbone prefix (tiny checkpoint)', () => {
  let dir: string;
  let backbone: Idefics2Backbone;
  let tokens: PromptTokens;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await tinyCheckpoint('tokens-prefix-');
    backbone = new Idefics2Backbone({ path: path.basename(dir) }, { seed: 3, baseDir: path.dirname(dir) });
    await backbone.init();
    tokens = new PromptTokens({ length: 5, init: 'uniform' }, 17);
    tokens.build(backbone.textHiddenSize);
  });

  afterAll(async () => {
    backbone?.setPrefixProvider(null);
    tokens?.dispose();
    backbone?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  async function logits(batch: PreferenceExample[]): Promise<{ liked: number[][]; disliked: number[][] }> {
    const prepared = await backbone.prepare(batch);
    const out = backbone.pairLogits(prepared, { training: false });
    const r = { liked: out.liked.arraySync(), disliked: out.disliked.arraySync() };
    tf.dispose([out.liked, out.disliked]);
    prepared.dispose();
    return r;
  }

  const score = (z: number[]) => {
    const { positive, negative } = backbone.readout;
    return 1 / (1 + Math.exp(z[negative] - z[positive]));
  };
  const maxAbs = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

  const short = example('short', 1, 1, 1, 'a cat');
  const long = example('long', 3, 2, 0, 'a much longer prompt about a castle at dusk');

  it('gives the same scores for an example alone and right-padded next to a longer one', async () => {
    backbone.setPrefixProvider(tokens);
    expect(backbone['p'].encodeExample(long).inputIds.length).toBeGreaterThan(backbone['p'].encodeExample(short).inputIds.length + 20);
    const alone = await logits([short]);
    const padded = await logits([short, long]);
    const paddedSecond = await logits([long, short]);
    const longAlone = await logits([long]);
    for (const [got, row] of [
      [padded, 0],
      [paddedSecond, 1],
    ] as const) {
      expect(maxAbs(got.liked[row], alone.liked[0])).toBeLessThan(1e-5);
      expect(maxAbs(got.disliked[row], alone.disliked[0])).toBeLessThan(1e-5);
      expect(Math.abs(score(got.liked[row]) - score(alone.liked[0]))).toBeLessThan(1e-5);
      expect(Math.abs(score(got.disliked[row]) - score(alone.disliked[0]))).toBeLessThan(1e-5);
    }
    expect(maxAbs(padded.liked[1], longAlone.liked[0])).toBeLessThan(1e-5);
    expect(maxAbs(padded.disliked[1], longAlone.disliked[0])).toBeLessThan(1e-5);
  });

  it('really changes the logits (vs no prefix), and changes them again when the tokens change', async () => {
    backbone.setPrefixProvider(tokens);
    const withPrefix = await logits([short, long]);
    backbone.setPrefixProvider(null);
    const without = await logits([short, long]);
    for (let b = 0; b < 2; b++) {
      expect(maxAbs(withPrefix.liked[b], without.liked[b])).toBeGreaterThan(1e-3);
      expect(maxAbs(withPrefix.disliked[b], without.disliked[b])).toBeGreaterThan(1e-3);
    }
    const other = new PromptTokens({ length: 5, init: 'uniform' }, 18);
    other.build(backbone.textHiddenSize);
    backbone.setPrefixProvider(other);
    const withOther = await logits([short, long]);
    backbone.setPrefixProvider(null);
    other.dispose();
    expect(maxAbs(withOther.liked[0], withPrefix.liked[0])).toBeGreaterThan(1e-4);
  });
});
