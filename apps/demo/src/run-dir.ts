/**
 * The demo's run directory belongs to one base and one world: `demo-base.json` records the base's
 * weights and the synthpick world (preset and seed) it was trained on, and outputs trained on other
 * weights or another world are moved aside, never mixed with the current ones and never deleted.
 */
import { createHash } from 'crypto';
import { existsSync, promises as fs } from 'fs';
import * as path from 'path';

export const RUN_RECORD = 'demo-base.json';
const OUTPUTS = ['stage1', 'stage1-norefs', 'stage2', 'eval', 'mine'];

/** The synthetic world a run was trained on. */
export interface RunWorld {
  preset: string;
  seed: number;
  /** sha256 of the preset's parameters (a preset whose parameters changed is another world). */
  params?: string;
}

/** sha256 of a parameter object, independent of key order. */
export function paramsHash(params: object): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon((v as Record<string, unknown>)[k])])) : v;
  return createHash('sha256').update(JSON.stringify(canon(params))).digest('hex');
}

/**
 * What identifies a base's weights: the sha256 of its safetensors files (of name, size and mtime
 * for files over 64 MB, so that pointing the demo at idefics2-8b does not hash 30 GB).
 */
export async function baseFingerprint(dir: string): Promise<string> {
  const h = createHash('sha256');
  const files = (await fs.readdir(dir)).filter((n) => n.endsWith('.safetensors')).sort();
  if (!files.length) throw new Error(`${dir}: no .safetensors weights`);
  for (const name of files) {
    const file = path.join(dir, name);
    const st = await fs.stat(file);
    h.update(`${name}\0${st.size}\0`);
    h.update(st.size <= 64 * 2 ** 20 ? await fs.readFile(file) : String(st.mtimeMs));
  }
  return h.digest('hex');
}

/**
 * Make `runs` the run directory of the base in `base` (and, when given, of the world `world`).
 * Returns where earlier outputs trained on other (or unrecorded) weights or another (or unrecorded)
 * world were moved, or null when there were none.
 */
export async function claimRunDir(runs: string, base: string, now: Date = new Date(), world?: RunWorld): Promise<string | null> {
  const weights = await baseFingerprint(base);
  const record = path.join(runs, RUN_RECORD);
  const recorded = existsSync(record) ? (JSON.parse(await fs.readFile(record, 'utf8')) as { weights?: string; world?: RunWorld }) : {};
  const trained = OUTPUTS.some((d) => existsSync(path.join(runs, d)));
  const sameWorld = !world || (recorded.world?.preset === world.preset && recorded.world?.seed === world.seed && recorded.world?.params === world.params);
  let aside: string | null = null;
  if (trained && (recorded.weights !== weights || !sameWorld)) {
    aside = `${runs}.stale-${now.toISOString().replace(/[:.]/g, '-')}`;
    await fs.rename(runs, aside);
  }
  await fs.mkdir(runs, { recursive: true });
  await fs.writeFile(record, JSON.stringify(world ? { base, weights, world } : { base, weights }, null, 2) + '\n');
  return aside;
}
