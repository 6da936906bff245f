/**
 * Backbone.openHistory (ranking many candidates after one history): the history's key-value state
 * is computed once, and every candidate must get the z+ / z- of its own complete sequence, as
 * pairLogitsFull (two complete sequences per example, itself checked against transformers by
 * backbone.spec / model.spec) computes it: with and without preference tokens, with no
 * references, with a prompt, across the session's chunk boundary, and for repeated calls.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { CandidateReadout, PreferenceExample, PreferenceImage, PrefixContext, PrefixProvider } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone } from '../src';
import { runAfterPrefix, runPrefix, textForwardPacked, type AttentionSegment } from '@userpref/mllm';
import { tinyCheckpoint } from './model-fixtures';
import { syntheticExample, syntheticImage } from './synthetic';

const RECIPE = { step: 5, add: 17, every: 7 };

/** Tokens that depend on the history mean, so the session's historyMean is exercised. */
class MixingPrefix implements PrefixProvider {
  readonly tokens: tf.Tensor2D;
  readonly mix: tf.Tensor2D;
  constructor(readonly length: number, d: number) {
    this.tokens = tf.randomUniform([length, d], 0, 1, 'float32', 21) as tf.Tensor2D;
    this.mix = tf.randomNormal([d, d], 0, 0.1, 'float32', 22) as tf.Tensor2D;
  }
  prefix(ctx: PrefixContext): { embeddings: tf.Tensor3D } {
    const q = tf.matMul(ctx.historyMean, this.mix);
    return { embeddings: tf.add(tf.expandDims(this.tokens, 0), tf.expandDims(q, 1)) as tf.Tensor3D };
  }
}

describe('openHistory: one history, many candidates (tiny checkpoint)', () => {
  let dir: string;
  let backbone: Idefics2Backbone;

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    dir = await tinyCheckpoint('idefics2-history-');
    backbone = new Idefics2Backbone({ path: path.basename(dir), maxPromptLen: 40, lora: { r: 4, alpha: 8, dropout: 0, targetModules: '.*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$', init: 'gaussian' } }, { seed: 5, baseDir: path.dirname(dir) });
    await backbone.init();
    // B = 0 at init would make the adapter a no-op: give every B a value, so LoRA is on the path.
    for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 60 + i), 0.05) as tf.Tensor2D);
  });

  afterAll(async () => {
    backbone?.setPrefixProvider(null);
    backbone?.dispose();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  const history = (refs: number) => syntheticExample('u', refs, 3, 1, { prompt: 'a cat', targetPrompt: 'unused', likedFirst: 'odd', recipe: RECIPE });
  const candidates = (n: number): PreferenceImage[] => Array.from({ length: n }, (_, i) => syntheticImage(500 + i, 30 + (i % 5) * 4, 44 - (i % 3) * 6, RECIPE));

  /** z+ / z- of each candidate from complete sequences: examples (c_i liked, c_{i+1} disliked). */
  async function reference(ex: PreferenceExample, prompt: string, cands: PreferenceImage[]): Promise<CandidateReadout[]> {
    const out: CandidateReadout[] = [];
    for (let i = 0; i < cands.length; i += 2) {
      const other = cands[Math.min(i + 1, cands.length - 1)];
      const prepared = await backbone.prepare([{ ...ex, target: { prompt, image0: cands[i], image1: other, label0: 1 } }]);
      const [l, d] = tf.tidy(() => {
        const r = backbone.pairLogitsFull(prepared, { training: false });
        return [r.liked.dataSync(), r.disliked.dataSync()];
      });
      prepared.dispose();
      out.push({ positive: l[backbone.readout.positive], negative: l[backbone.readout.negative] });
      if (i + 1 < cands.length) out.push({ positive: d[backbone.readout.positive], negative: d[backbone.readout.negative] });
    }
    return out;
  }

  function expectClose(got: CandidateReadout[], want: CandidateReadout[]): void {
    expect(got).toHaveLength(want.length);
    const scale = Math.max(...want.map((w) => Math.max(Math.abs(w.positive), Math.abs(w.negative))), 1e-3);
    for (const [i, w] of want.entries()) {
      expect(Math.abs(got[i].positive - w.positive) / scale).toBeLessThan(2e-5);
      expect(Math.abs(got[i].negative - w.negative) / scale).toBeLessThan(2e-5);
    }
    // The candidates must not all read the same: otherwise the comparison says nothing.
    expect(new Set(want.map((w) => (w.positive - w.negative).toFixed(4))).size).toBeGreaterThan(1);
  }

  it('gives each candidate the logits of its complete sequence, across the chunk boundary and on a second call', async () => {
    const ex = history(3);
    const cands = candidates(19);
    const session = await backbone.openHistory(ex);
    try {
      const got = await session.score('target prompt', cands);
      expectClose(got, await reference(ex, 'target prompt', cands));
      // Another prompt on the same state: the prompt is part of the candidate turn, not of the history.
      const again = await session.score('something else entirely', cands.slice(0, 3));
      expectClose(again, await reference(ex, 'something else entirely', cands.slice(0, 3)));
    } finally {
      session.dispose();
    }
  });

  it('scores after an empty history (0 reference pairs)', async () => {
    const ex = history(0);
    const cands = candidates(3);
    const session = await backbone.openHistory(ex);
    try {
      expectClose(await session.score('p', cands), await reference(ex, 'p', cands));
    } finally {
      session.dispose();
    }
  });

  it('puts the preference tokens (and their history-mean query) before the history', async () => {
    const provider = new MixingPrefix(3, backbone.textHiddenSize);
    backbone.setPrefixProvider(provider);
    try {
      const ex = history(2);
      const cands = candidates(4);
      const session = await backbone.openHistory(ex);
      try {
        expectClose(await session.score('q', cands), await reference(ex, 'q', cands));
      } finally {
        session.dispose();
      }
    } finally {
      backbone.setPrefixProvider(null);
      tf.dispose([provider.tokens, provider.mix]);
    }
  });

  it('frees its key-value state on dispose and refuses to score afterwards', async () => {
    const before = tf.memory().numTensors;
    const session = await backbone.openHistory(history(2));
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    await session.score('p', candidates(2));
    session.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await expect(session.score('p', candidates(1))).rejects.toThrow(/disposed/);
  });

  it.each([
    ['equal suffixes (one product per KV head, last layer on the read rows only)', [4, 4, 4]],
    ['suffixes of different lengths (one attention segment each)', [3, 6, 1]],
  ])('runAfterPrefix on %s gives textForwardPacked\'s logits of prefix + suffix', (_, lengths) => {
    const m = backbone.idefics2;
    const d = m.config.text.hiddenSize;
    const L = 9;
    const N = lengths.reduce((a, b) => a + b, 0);
    const prefix = tf.randomNormal([L, d], 0, 1, 'float32', 91) as tf.Tensor2D;
    const suffixes = tf.randomNormal([N, d], 0, 1, 'float32', 92) as tf.Tensor2D;
    const kv = runPrefix(m.params, m.config, prefix);
    const got = runAfterPrefix(m.params, m.config, kv, suffixes, lengths);
    // Reference: one packed forward of the prefix and every suffix on its keys.
    const positions: number[] = [...Array(L).keys()];
    const segments: AttentionSegment[] = [{ query: { start: 0, len: L }, keys: [{ start: 0, len: L }], causalOffset: 0 }];
    const readRows: number[] = [];
    let row = L;
    for (const len of lengths) {
      positions.push(...Array.from({ length: len }, (_, t) => L + t));
      segments.push({ query: { start: row, len }, keys: [{ start: 0, len: L }, { start: row, len }], causalOffset: L });
      readRows.push(row + len - 1);
      row += len;
    }
    const packed = tf.concat([prefix, suffixes], 0) as tf.Tensor2D;
    const want = textForwardPacked(m.params, m.config, { embeds: packed, positions, segments, readRows }, { ctx: { training: false } }).logits;
    const g = got.dataSync();
    const w = want.dataSync();
    const scale = Math.max(...Array.from(w, Math.abs));
    expect(got.shape).toEqual([lengths.length, m.config.text.vocabSize]);
    for (let i = 0; i < w.length; i++) expect(Math.abs(g[i] - w[i]) / scale).toBeLessThan(2e-5);
    tf.dispose([prefix, suffixes, got, packed, want]);
    kv.dispose();
  });
});
