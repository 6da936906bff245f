/**
 * Mining on the tiny checkpoint + tiny synthpick, with the real plugins (which packages/mining may
 * not depend on): the backbone's attention probe gives deterministic vectors of the right shape,
 * a run writes its files with purity and the exact random baseline recomputed here from the truth
 * sidecar, and the mine app (flags -> config -> assembly -> runMining) runs end to end.
 */
import { spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { memoryLogger, type AttentionProbe } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { Idefics2Backbone } from '@userpref/backbone-idefics2';
import { PickapicDataset, clustersFromTruth, type SynthpickTruth } from '@userpref/dataset-pickapic';
import { PromptTokens } from '@userpref/preference-tokens';
import { findTarget, mineSimilarUsers, runMining } from '@userpref/mining';
import { removeWorld, tinyWorld, type TinyWorld } from './world';

let world: TinyWorld;
let backbone: Idefics2Backbone;
let dataset: PickapicDataset;
let probe: AttentionProbe;
let tokens: PromptTokens;

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
  world = await tinyWorld('mine');
  const run = { seed: 5, baseDir: world.root };
  backbone = new Idefics2Backbone({ path: 'idefics2-tiny' }, run);
  await backbone.init();
  // A non-zero LoRA, as after stage 1.
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', i + 1), 0.05) as tf.Tensor2D);
  dataset = new PickapicDataset({ path: 'processed', refPairNum: 3, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize: 32, tiePolicy: 'drop' }, run);
  await dataset.init();
  probe = await backbone.attentionProbe();
  tokens = new PromptTokens({ length: 4 }, 11);
  tokens.build(backbone.textHiddenSize);
});

afterAll(async () => {
  tokens?.dispose();
  backbone?.dispose();
  await dataset?.close();
  await removeWorld(world);
});

describe('mineSimilarUsers on the IDEFICS2 probe', () => {
  it('gives deterministic vectors of the right shape (tokens, or tokens x layers)', async () => {
    const split = dataset.split('test');
    const clusters = (await dataset.knownUserGroups())!.groups;
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
    const { result, files, groups } = await runMining({ backbone, dataset, tokens: fresh, logger: memoryLogger() }, { tokensPath: tokensDir, outDir: out, orders: 2, k: 3, groups: await clustersFromTruth(world.truthFile) });
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

    expect(groups?.source).toBe(world.truthFile);
    expect(json.clusters).toBe(world.truthFile);

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

  it("without given groups, measures purity against the dataset's own (the manifest's synthpick clusters)", async () => {
    const tokensDir = path.join(world.root, 'tokens-default');
    await tokens.save(tokensDir);
    const fresh = new PromptTokens({ length: 4 }, 999);
    const { result, groups } = await runMining({ backbone, dataset, tokens: fresh, logger: memoryLogger() }, { tokensPath: tokensDir, outDir: path.join(world.root, 'runs', 'mine-default'), users: 4, orders: 1, k: 2, layers: [-1] });
    fresh.dispose();
    expect(groups?.source).toMatch(/manifest\.json \(synthetic\.userClusters\)$/);
    expect(result.purity?.counted).toBe(4);
    const truth = await clustersFromTruth(world.truthFile);
    for (const u of result.users) expect(u.cluster).toBe(truth.groups.get(u.userId));
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
