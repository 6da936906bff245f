/**
 * The attention probe on the tiny checkpoint (the AttentionProbeProvider capability of the
 * backbone): it feeds the text model what pairLogits feeds it (same logits, for a right-padded
 * batch, with a non-zero LoRA), and its vectors are the target-image rows over the
 * preference-token columns of the real attention maps, checked by hand from the raw maps.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { hasAttentionProbe, type PreferenceExample } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { PromptTokens } from '@userpref/preference-tokens';
import { Idefics2AttentionProbe, Idefics2Backbone } from '../src';
import { tinyCheckpoint } from './model-fixtures';
import { syntheticExample, syntheticImage } from './synthetic';

const RECIPE = { step: 5, add: 17, every: 3 };

let dir: string;
let backbone: Idefics2Backbone;
let probe: Idefics2AttentionProbe;
let tokens: PromptTokens;

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  dir = await tinyCheckpoint('idefics2-probe-');
  backbone = new Idefics2Backbone({ path: path.basename(dir) }, { seed: 5, baseDir: path.dirname(dir) });
  await backbone.init();
  // A non-zero LoRA, so the probe must go through the adapted connector / text model like pairLogits.
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i + 1), 0.05) as tf.Tensor2D);
  probe = await backbone.attentionProbe();
  tokens = new PromptTokens({ length: 4 }, 11);
  tokens.build(backbone.textHiddenSize);
});

afterAll(async () => {
  tokens?.dispose();
  backbone?.dispose();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/**
 * Two users' histories (2 and 3 reference pairs, so the batch is right padded), each pair
 * disliked-first, before one fixed target image (image0 = image1), as mining builds them.
 */
function twoUserBatch(): PreferenceExample[] {
  const target = syntheticImage(77, 36, 36, RECIPE);
  return [
    ['u1', 2, 1],
    ['u2', 3, 2],
  ].map(([user, refs, seed]) => {
    const ex = syntheticExample(user as string, refs as number, seed as number, 1, { prompt: `prompt of ${user}`, targetPrompt: 'the target', likedFirst: 'even', recipe: RECIPE });
    return { ...ex, likedFirst: ex.references.map(() => false), target: { prompt: 'the target', image0: target, image1: target, label0: 1 } };
  });
}

describe('Idefics2AttentionProbe', () => {
  it('is the backbone\'s AttentionProbeProvider capability', () => {
    expect(hasAttentionProbe(backbone)).toBe(true);
    expect(probe).toBeInstanceOf(Idefics2AttentionProbe);
    expect(probe.numLayers).toBe(backbone.idefics2.config.text.numLayers);
    expect(probe.numHeads).toBe(backbone.idefics2.config.text.numHeads);
  });

  it('feeds the text model what pairLogits does: same logits for the (padded) liked-target sequences', async () => {
    const batch = twoUserBatch();
    const lengths = batch.map((ex) => probe.processor.encodeExample(ex).inputIds.length);
    expect(lengths[0]).not.toBe(lengths[1]); // one of the two rows is right padded
    const fwd = await probe.forward(batch, tokens, [0]);
    backbone.setPrefixProvider(tokens);
    const prepared = await backbone.prepare(batch);
    const pair = backbone.pairLogits(prepared, { training: false });
    backbone.setPrefixProvider(null);
    const want = pair.liked.arraySync();
    const got = fwd.logits.arraySync();
    for (let b = 0; b < 2; b++) for (let j = 0; j < want[b].length; j++) expect(Math.abs(got[b][j] - want[b][j])).toBeLessThan(1e-5 * Math.max(1, Math.abs(want[b][j])));
    tf.dispose([pair.liked, pair.disliked]);
    prepared.dispose();
    fwd.dispose();
  });

  it('reads the target-image rows over the preference-token columns (checked by hand on the raw maps)', async () => {
    const batch = twoUserBatch();
    const layers = [0, 1];
    const fwd = await probe.forward(batch, tokens, layers);
    const P = tokens.length;
    expect(fwd.prefixLength).toBe(P);
    const imageId = backbone.idefics2.config.imageTokenId;
    const latents = probe.processor.imageSeqLen;
    const vectors = await probe.preferenceAttention(batch, tokens, { layers, heads: null });
    const headSel = await probe.preferenceAttention(batch, tokens, { layers: [1], heads: [2], layersPerPass: 1 });
    for (let b = 0; b < 2; b++) {
      const enc = probe.processor.encodeExample(batch[b]);
      const slots = enc.imageSlots;
      // The rows are the LAST image run (the target), shifted by the prefix.
      expect(fwd.rows[b].queryStart).toBe(P + slots[slots.length - 1].start);
      expect(fwd.rows[b].queryCount).toBe(latents);
      for (let q = 0; q < latents; q++) expect(enc.inputIds[slots[slots.length - 1].start + q]).toBe(imageId);
      for (const l of layers) {
        const maps = fwd.attentions[l]!.arraySync()[b]; // [H][T][T]
        const H = maps.length;
        const rows = Array.from({ length: latents }, (_, q) => fwd.rows[b].queryStart + q);
        const hand = Array.from({ length: P }, (_, p) => maps.reduce((s, head) => s + rows.reduce((t, q) => t + head[q][p], 0), 0) / (H * latents));
        const got = Array.from(vectors[b][layers.indexOf(l)]);
        hand.forEach((v, p) => expect(got[p]).toBeCloseTo(v, 6));
        if (l === 1) {
          const h2 = Array.from({ length: P }, (_, p) => rows.reduce((t, q) => t + maps[2][q][p], 0) / latents);
          h2.forEach((v, p) => expect(headSel[b][0][p]).toBeCloseTo(v, 6));
        }
        // The other direction is empty by causality: preference-token rows never see the target image.
        for (const head of maps) for (let p = 0; p < P; p++) for (const q of rows) expect(head[p][q]).toBe(0);
        // And the signal is not trivial: the target attends to the tokens.
        expect(hand.reduce((s, x) => s + x, 0)).toBeGreaterThan(0);
      }
    }
    fwd.dispose();
  });

  it('refuses layers outside the text model and an empty selection', async () => {
    const batch = twoUserBatch();
    await expect(probe.forward(batch, tokens, [probe.numLayers])).rejects.toThrow(/outside \[0, /);
    await expect(probe.preferenceAttention(batch, tokens, { layers: [], heads: null })).rejects.toThrow(/no layers selected/);
  });
});
