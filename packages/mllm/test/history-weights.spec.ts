/**
 * The weights behind PrefixContext (historyMean and preferenceDirection), checked on hand-made
 * token sequences: which tokens each weight lands on is counted by hand below.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PrefixContext, PrefixProvider } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { fillHistoryWeights, historyWeights, prefixTokens, stackHistoryWeights } from '../src';

const BOS = 1;
const F = 2; // <fake_token_around_image>
const I = 3; // <image>
const EOU = 4;
const R = 5; // a tile marker between the tiles of one image
const PLUS = 6;
const MINUS = 7;

/*
 * Two reference images of 2 <image> tokens each, disliked first, then the target:
 *   index: 0   1  2  3  4  5      6    7  8  9  10 11    12   13 14 15
 *   token: BOS F  I  I  F  MINUS  EOU  F  I  I  F  PLUS  EOU  F  I  I
 * History = tokens 0..12 (13 tokens, up to the last <end_of_utterance> before the target).
 * direction: -1/2 at 2, 3 (disliked), +1/2 at 8, 9 (liked); 0 elsewhere, the target's included.
 */
const seq = [BOS, F, I, I, F, MINUS, EOU, F, I, I, F, PLUS, EOU, F, I, I];

describe('history weights (PrefixContext)', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it('mean over the history, liked-minus-disliked over the reference images, nothing on the target', () => {
    const T = 18;
    const w = historyWeights(2, T);
    fillHistoryWeights(w, 1, T, 13, seq, I, [2, 2], [false, true]);
    expect(Array.from(w.mean.subarray(0, T)).every((v) => v === 0)).toBe(true);
    const mean = Array.from(w.mean.subarray(T));
    mean.forEach((v, t) => expect(v).toBeCloseTo(t < 13 ? 1 / 13 : 0, 7));
    const dir = Array.from(w.direction.subarray(T));
    expect(dir).toEqual([0, 0, -0.5, -0.5, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('images of several tiles: tokens between an image\'s tiles are skipped, the counts decide where an image ends', () => {
    // Image 0 (liked): two tiles of 2 tokens with a marker between; image 1 (disliked): 1 tile of 2; image 2 (liked): 1 tile of 2.
    const ids = [BOS, F, I, I, R, F, I, I, F, PLUS, EOU, F, I, I, F, MINUS, EOU, F, I, I, F, PLUS, EOU];
    const w = historyWeights(1, ids.length);
    fillHistoryWeights(w, 0, ids.length, ids.length, ids, I, [4, 2, 2], [true, false, true]);
    const want = ids.map(() => 0);
    for (const t of [2, 3, 6, 7, 18, 19]) want[t] = 1 / 6;
    for (const t of [12, 13]) want[t] = -1 / 2;
    Array.from(w.direction).forEach((v, t) => expect(v).toBeCloseTo(want[t], 7));
  });

  it('a history without both a liked and a disliked image has direction 0; miscounted images are refused', () => {
    const ids = [BOS, EOU, F, I, I];
    const w = historyWeights(1, 5);
    fillHistoryWeights(w, 0, 5, 2, ids, I, [], []);
    expect(Array.from(w.direction).every((v) => v === 0)).toBe(true);
    expect(Array.from(w.mean)).toEqual([0.5, 0.5, 0, 0, 0]);
    expect(() => fillHistoryWeights(historyWeights(1, 18), 0, 18, 13, seq, I, [2, 3], [false, true])).toThrow('history weights: 4 <image> tokens in the reference history; its 2 images need 5');
    expect(() => fillHistoryWeights(historyWeights(1, 18), 0, 18, 13, seq, I, [2, 1], [false, true])).toThrow('history weights: more than 3 <image> tokens in the reference history');
    expect(() => fillHistoryWeights(historyWeights(1, 18), 0, 18, 13, seq, I, [2], [false, true])).toThrow('history weights: 1 reference images but 2 liked flags');
  });

  it('prefixTokens hands the provider both weighted sums of the embeddings', () => {
    const T = seq.length;
    const rowA = historyWeights(1, 13);
    fillHistoryWeights(rowA, 0, 13, 13, seq.slice(0, 13), I, [2, 2], [false, true]);
    const rowB = historyWeights(1, T);
    fillHistoryWeights(rowB, 0, T, 13, seq, I, [2, 2], [true, false]);
    const w = stackHistoryWeights([rowA, rowB], T);
    // Embedding of token t in row b: [t, b + 1, t * t].
    const emb = tf.tensor3d([0, 1].map((b) => Array.from({ length: T }, (_, t) => [t, b + 1, t * t])));
    let seen: PrefixContext | null = null;
    const provider: PrefixProvider = {
      length: 1,
      prefix: (ctx) => {
        seen = { historyMean: ctx.historyMean.clone(), preferenceDirection: ctx.preferenceDirection.clone() };
        return { embeddings: tf.zeros([2, 1, 3]) as tf.Tensor3D };
      },
    };
    tf.dispose(prefixTokens(provider, w, emb, 2).embeddings);
    const got = seen as unknown as PrefixContext;
    // Mean over t = 0..12: t -> 6, second component b + 1, t^2 -> (0 + 1 + ... + 144) / 13 = 650 / 13 = 50.
    const mean = got.historyMean.arraySync();
    [6, 1, 50].forEach((v, i) => expect(mean[0][i]).toBeCloseTo(v, 4));
    [6, 2, 50].forEach((v, i) => expect(mean[1][i]).toBeCloseTo(v, 4));
    // Row 0: liked tokens 8, 9 minus disliked 2, 3: (8.5 - 2.5, 0, (64 + 81) / 2 - (4 + 9) / 2) = (6, 0, 66). Row 1 is its negative.
    const dir = got.preferenceDirection.arraySync();
    [6, 0, 66].forEach((v, i) => expect(dir[0][i]).toBeCloseTo(v, 4));
    [-6, 0, -66].forEach((v, i) => expect(dir[1][i]).toBeCloseTo(v, 4));
    tf.dispose([emb, got.historyMean, got.preferenceDirection]);
  });
});
