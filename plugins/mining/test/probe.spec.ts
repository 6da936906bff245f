/**
 * Mining on the tiny checkpoint + tiny synthpick: the probe feeds the text model what pairLogits
 * feeds it (same logits), the vector is read from the target-image rows over the preference-token
 * columns of the real attention maps (checked by hand from the raw maps), vectors are
 * deterministic and of the right shape, and a run writes its files with purity and the exact
 * random baseline recomputed here from the truth sidecar.
 */
import { spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { memoryLogger, type PreferenceExample } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone } from '@userpref/backbone-idefics2';
import { PickapicDataset, type SynthpickTruth } from '@userpref/dataset-pickapic';
import { PromptTokens } from '@userpref/preference-tokens';
import { Idefics2AttentionProbe, clustersFromProcessed, clustersFromTruth, findTarget, mineSimilarUsers, reorderedExample, runMining } from '../src';
import { removeWorld, tinyWorld, type TinyWorld } from './world';

let world: TinyWorld;
let backbone: Idefics2Backbone;
let dataset: PickapicDataset;
let probe: Idefics2AttentionProbe;
let tokens: PromptTokens;

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  world = await tinyWorld('probe');
  const run = { seed: 5, baseDir: world.root };
  backbone = new Idefics2Backbone({ path: 'idefics2-tiny' }, run);
  await backbone.init();
  // A non-zero LoRA, so the probe must go through the adapted connector / text model like pairLogits.
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i + 1), 0.05) as tf.Tensor2D);
  dataset = new PickapicDataset({ path: 'processed', refPairNum: 3, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize: 32, tiePolicy: 'drop' }, run);
  await dataset.init();
  probe = await Idefics2AttentionProbe.create(backbone);
  tokens = new PromptTokens({ length: 4 }, 11);
  tokens.build(backbone.textHiddenSize);
});

afterAll(async () => {
  tokens?.dispose();
  backbone?.dispose();
  await dataset?.close();
  await removeWorld(world);
});

async function twoUserBatch(): Promise<PreferenceExample[]> {
  const split = dataset.split('test');
  const { image, target } = await findTarget(split, null);
  const a = await split.get(0);
  let b = a;
  for (let i = 1; i < split.size && b.userId === a.userId; i++) b = await split.get(i);
  // Different prompts make different lengths: the batch is right padded.
  return [reorderedExample(a, { image, prompt: target.prompt }, 1, 0), reorderedExample(b, { image, prompt: target.prompt }, 1, 0)];
}

describe('Idefics2AttentionProbe', () => {
  it('feeds the text model what pairLogits does: same logits for the (padded) liked-target sequences', async () => {
    const batch = await twoUserBatch();
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
    const batch = await twoUserBatch();
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

  it('gives deterministic vectors of the right shape (tokens, or tokens x layers)', async () => {
    const split = dataset.split('test');
    const clusters = (await clustersFromProcessed(dataset.directory))!.clusters;
    const opts = { users: 4, orders: 2, k: 2 } as const;
    const a = await mineSimilarUsers({ probe, split, prefix: tokens, clusters }, opts);
    const b = await mineSimilarUsers({ probe, split, prefix: tokens, clusters }, opts);
    expect(a.users).toHaveLength(4);
    expect(a.users.map((u) => u.vector)).toEqual(b.users.map((u) => u.vector));
    for (const u of a.users) {
      expect(u.vector).toHaveLength(4);
      expect(u.references).toBe(3);
      expect(u.cluster).toBe(clusters.get(u.userId));
      for (const x of u.vector) expect(x).toBeGreaterThan(0);
      expect(u.vector.reduce((s, x) => s + x, 0)).toBeLessThanOrEqual(1 + 1e-6);
    }
    const perLayer = await mineSimilarUsers({ probe, split, prefix: tokens, clusters }, { ...opts, vector: 'per-layer', batchSize: 1, layersPerPass: 1 });
    perLayer.users.forEach((u, i) => {
      expect(u.vector).toHaveLength(8);
      // the mean over the two layers is the 'mean' vector
      for (let t = 0; t < 4; t++) expect((u.vector[t] + u.vector[4 + t]) / 2).toBeCloseTo(a.users[i].vector[t], 6);
    });
    // Another seed re-orders the references differently, so the vectors move.
    const c = await mineSimilarUsers({ probe, split, prefix: tokens, clusters }, { ...opts, users: 2, seed: 43 });
    expect(c.users.map((u) => u.vector)).not.toEqual(a.users.slice(0, 2).map((u) => u.vector));
  });
});

describe('runMining', () => {
  it('writes neighbours.json, users.csv and the heatmap; purity and the random baseline match the truth sidecar', async () => {
    const tokensDir = path.join(world.root, 'tokens');
    await tokens.save(tokensDir);
    const fresh = new PromptTokens({ length: 4 }, 999);
    const out = path.join(world.root, 'runs', 'mine');
    const { result, files } = await runMining({ backbone, dataset, tokens: fresh, logger: memoryLogger() }, { tokensPath: tokensDir, outDir: out, orders: 2, k: 3, truthFile: world.truthFile });
    fresh.dispose();

    const truth = JSON.parse(await fs.readFile(world.truthFile, 'utf8')) as SynthpickTruth;
    const clusterOf = new Map(truth.users.map((u) => [u.user_id, u.cluster]));
    const json = JSON.parse(await fs.readFile(files.neighbours, 'utf8'));
    const users = json.users as Array<{ userId: string; cluster: number; neighbours: Array<{ userId: string; similarity: number }> }>;
    expect(users.length).toBe(result.users.length);
    expect(users.length).toBeGreaterThanOrEqual(6);
    // purity by hand from the written neighbour lists and the sidecar's clusters
    const N = users.length;
    let purity = 0;
    let baseline = 0;
    for (const u of users) {
      expect(u.cluster).toBe(clusterOf.get(u.userId));
      expect(u.neighbours).toHaveLength(3);
      expect(u.neighbours.some((nb) => nb.userId === u.userId)).toBe(false);
      const sims = u.neighbours.map((nb) => nb.similarity);
      expect([...sims].sort((x, y) => y - x)).toEqual(sims);
      purity += u.neighbours.filter((nb) => clusterOf.get(nb.userId) === u.cluster).length / 3;
      baseline += (users.filter((v) => v.cluster === u.cluster).length - 1) / (N - 1);
    }
    expect(json.purity.purity).toBeCloseTo(purity / N, 12);
    expect(json.purity.randomBaseline).toBeCloseTo(baseline / N, 12);
    expect(json.settings.orders).toBe(2);
    expect(json.target.imageId).toMatch(/^[0-9a-f]{64}$/);

    // the truth file and the processed manifest agree on the clusters
    const fromManifest = (await clustersFromProcessed(dataset.directory))!.clusters;
    const fromTruth = (await clustersFromTruth(world.truthFile)).clusters;
    expect([...fromManifest.entries()].sort()).toEqual([...fromTruth.entries()].sort());

    const csv = (await fs.readFile(files.users, 'utf8')).trim().split('\n');
    expect(csv).toHaveLength(N + 1);
    expect(csv[0].split(',').slice(0, 6)).toEqual(['user_id', 'cluster', 'example', 'references', 'purity_at_k', 'neighbours']);
    expect(csv[0].split(',')).toHaveLength(6 + 4);

    const png = await fs.readFile(files.heatmapPng);
    expect(Array.from(png.subarray(1, 4))).toEqual([0x50, 0x4e, 0x47]); // "PNG"
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const meta = await (require('sharp') as typeof import('sharp'))(png).metadata();
    expect(meta.width).toBeGreaterThan(600);
  });

  it('the mine app (flags -> config -> assembly -> runMining) writes its files under <out>/<exp_name>', async () => {
    const dir = path.join(world.root, 'app');
    await tokens.save(path.join(dir, 'tokens'));
    await backbone.saveAdapter(path.join(dir, 'adapter'));
    const workspace = path.resolve(__dirname, '..', '..', '..');
    const config = {
      extends: path.join(workspace, 'apps', 'mine', 'config', 'default.json'),
      out: path.join(dir, 'runs'),
      device: 'cpu',
      plugins: {
        backbone: { options: { path: world.checkpoint } },
        dataset: { options: { path: world.processed, refPairNum: 3, imageSize: 32 } },
        tokens: { options: { length: 4 } },
      },
    };
    await fs.writeFile(path.join(dir, 'run.json'), JSON.stringify(config));
    const args = ['tools/scripts/run-ts.js', 'apps/mine/src/main.ts', '--config', path.join(dir, 'run.json'), '--tokens_path', path.join(dir, 'tokens'), '--lora_path', path.join(dir, 'adapter')];
    const child = spawnSync(process.execPath, [...args, '--exp_name', 'smoke', '--split', 'train', '--users', '5', '--orders', '1', '--k', '2', '--layers', '-1', '--truth', world.truthFile], { cwd: workspace, encoding: 'utf8' });
    expect(child.stderr).not.toMatch(/^error:/m);
    expect(child.status).toBe(0);
    expect(child.stdout).toMatch(/purity@2 \(cosine, reported\): [\d.]+%\s+random baseline: [\d.]+%/);
    const json = JSON.parse(await fs.readFile(path.join(dir, 'runs', 'smoke', 'neighbours.json'), 'utf8'));
    expect(json.users).toHaveLength(5);
    expect(json.settings.layers).toEqual([1]);
    expect(json.clusters).toBe(world.truthFile);
    for (const f of ['users.csv', 'similarity-heatmap.png']) await expect(fs.stat(path.join(dir, 'runs', 'smoke', f))).resolves.toBeTruthy();
  });

  it('finds a target by a unique id prefix and rejects unknown ids', async () => {
    const split = dataset.split('test');
    const first = await split.get(0);
    const id = first.references[0].liked.id;
    const found = await findTarget(split, id.slice(0, 12));
    expect(found.target.imageId).toBe(id);
    expect(found.target.prompt).toBe(first.references[0].prompt);
    await expect(findTarget(split, 'ffffffffffffffffffff')).rejects.toThrow(/no image of the test split/);
  });
});
