/**
 * Hidden taste clusters of synthetic users, as core UserGroups, from either place they are
 * recorded: the processed dataset's manifest.json (`synthetic.userClusters`, written by import
 * when the synthpick truth sidecar sits next to the raw parquet) or the sidecar itself
 * (synthpick-truth.json). Only the manifest is read, not the comparisons table, so this stays
 * cheap on large imports. PickapicDataset.knownUserGroups() answers with the first; the mine app
 * reads the second for --truth.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { UserGroups } from '@userpref/core';
import { FORMAT_NAME, type Manifest } from './store';
import type { SynthpickTruth } from './synthpick';

async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Clusters recorded in a processed dataset directory; null when the data is not synthetic. */
export async function clustersFromProcessed(dir: string): Promise<UserGroups | null> {
  const file = path.join(dir, 'manifest.json');
  const manifest = (await readJson(file, 'processed dataset manifest')) as Manifest;
  if (manifest.format !== FORMAT_NAME) throw new Error(`${file}: format is ${JSON.stringify(manifest.format)}, expected "${FORMAT_NAME}"`);
  const map = manifest.synthetic?.userClusters;
  if (!map) return null;
  const groups = new Map<string, number>();
  for (const [user, c] of Object.entries(map)) {
    if (!Number.isInteger(c)) throw new Error(`${file}: synthetic.userClusters["${user}"] is ${JSON.stringify(c)}, not an integer`);
    groups.set(user, c);
  }
  return { source: `${file} (synthetic.userClusters)`, groups };
}

/** Clusters of a synthpick truth sidecar (synthpick-truth.json). */
export async function clustersFromTruth(file: string): Promise<UserGroups> {
  const truth = (await readJson(file, 'synthpick truth')) as Partial<SynthpickTruth>;
  if (truth.kind !== 'synthpick' || !Array.isArray(truth.users)) throw new Error(`${file}: not a synthpick truth file (expected kind "synthpick" and a users list)`);
  const groups = new Map<string, number>();
  truth.users.forEach((u, i) => {
    if (typeof u?.user_id !== 'string' || !Number.isInteger(u.cluster)) throw new Error(`${file}: users[${i}] must have a string user_id and an integer cluster, got ${JSON.stringify(u)}`);
    groups.set(u.user_id, u.cluster);
  });
  return { source: file, groups };
}
