/**
 * The synthpick users' hidden clusters as core UserGroups: the processed manifest and the truth
 * sidecar agree, the dataset offers them through the optional UserGroupsProvider capability (null
 * for data without recorded clusters), and malformed files are refused naming the file.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { hasKnownUserGroups, memoryLogger } from '@userpref/core';
import { clustersFromProcessed, clustersFromTruth } from '../src/clusters';
import { PickapicDataset } from '../src/dataset';
import { importDataset } from '../src/import';
import { FORMAT_NAME } from '../src/store';
import { generateSynthpick } from '../src/synthpick';
import { options, tmpDir } from './helpers';

const root = tmpDir('clusters');
const processed = path.join(root, 'processed');
let truthFile: string;

beforeAll(async () => {
  const gen = await generateSynthpick({ preset: 'tiny', seed: 7, outDir: path.join(root, 'raw') });
  truthFile = gen.truthFile;
  await importDataset({ from: [path.join(root, 'raw')], out: processed, logger: memoryLogger(), seed: 7 });
});

describe('hidden clusters as user groups', () => {
  it('the manifest and the truth sidecar give the same clusters, each naming its source', async () => {
    const fromManifest = (await clustersFromProcessed(processed))!;
    const fromTruth = await clustersFromTruth(truthFile);
    expect(fromManifest.groups.size).toBe(12);
    expect([...fromManifest.groups.entries()].sort()).toEqual([...fromTruth.groups.entries()].sort());
    expect(new Set(fromTruth.groups.values())).toEqual(new Set([0, 1, 2]));
    expect(fromManifest.source).toBe(`${path.join(processed, 'manifest.json')} (synthetic.userClusters)`);
    expect(fromTruth.source).toBe(truthFile);
  });

  it('PickapicDataset offers them as its known user groups (UserGroupsProvider)', async () => {
    const ds = new PickapicDataset(options('processed'), { seed: 1, baseDir: root });
    expect(hasKnownUserGroups(ds)).toBe(true);
    const groups = (await ds.knownUserGroups())!;
    expect([...groups.groups.entries()].sort()).toEqual([...(await clustersFromTruth(truthFile)).groups.entries()].sort());
  });

  it('is null for processed data without recorded clusters', async () => {
    const dir = path.join(root, 'real');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify({ format: FORMAT_NAME }));
    expect(await clustersFromProcessed(dir)).toBeNull();
    expect(await new PickapicDataset(options('real'), { seed: 1, baseDir: root }).knownUserGroups()).toBeNull();
  });

  it('refuses files that are not what they claim, naming them', async () => {
    const bad = path.join(root, 'bad');
    await fs.mkdir(bad, { recursive: true });
    await fs.writeFile(path.join(bad, 'manifest.json'), JSON.stringify({ format: 'something-else' }));
    await expect(clustersFromProcessed(bad)).rejects.toThrow(/manifest\.json: format is "something-else"/);
    await fs.writeFile(path.join(bad, 'manifest.json'), JSON.stringify({ format: FORMAT_NAME, synthetic: { userClusters: { u1: 1.5 } } }));
    await expect(clustersFromProcessed(bad)).rejects.toThrow(/synthetic\.userClusters\["u1"\] is 1\.5, not an integer/);
    const notTruth = path.join(bad, 'truth.json');
    await fs.writeFile(notTruth, JSON.stringify({ kind: 'other' }));
    await expect(clustersFromTruth(notTruth)).rejects.toThrow(/not a synthpick truth file/);
    await fs.writeFile(notTruth, JSON.stringify({ kind: 'synthpick', users: [{ user_id: 3, cluster: 0 }] }));
    await expect(clustersFromTruth(notTruth)).rejects.toThrow(/users\[0\] must have a string user_id/);
    await expect(clustersFromTruth(path.join(bad, 'missing.json'))).rejects.toThrow(/cannot read synthpick truth/);
    await fs.writeFile(notTruth, '{');
    await expect(clustersFromTruth(notTruth)).rejects.toThrow(/is not valid JSON/);
  });
});
