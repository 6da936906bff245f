/**
 * The demo's world file, `<config>.world.json` beside a run config (the run config schema has no
 * place for it): which synthpick world the demo generates (preset, seed) and, optionally,
 * `stage2Set`, `--set` overrides for stage 2 alone, so that a config whose `train` section is a
 * longer stage 1 (demo-long.json) keeps the demo's stage 2.
 */
import { existsSync, promises as fs } from 'fs';

export interface DemoWorld {
  preset: string;
  seed: number;
  /** `--set key=value` arguments for the stage-2 runner. */
  stage2Args: string[];
}

/** The world of run config `config` (defaults: preset 'default', seed 42, no stage-2 overrides); errors name the file. */
export async function readDemoWorld(config: string): Promise<DemoWorld> {
  const file = config.replace(/\.json$/, '.world.json');
  if (!existsSync(file)) return { preset: 'default', seed: 42, stage2Args: [] };
  let raw: { preset?: unknown; seed?: unknown; stage2Set?: unknown };
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (raw.preset !== undefined && typeof raw.preset !== 'string') throw new Error(`${file}: preset must be a synthpick preset name`);
  if (raw.seed !== undefined && !Number.isInteger(raw.seed)) throw new Error(`${file}: seed must be an integer`);
  const set = raw.stage2Set ?? {};
  if (typeof set !== 'object' || set === null || Array.isArray(set)) throw new Error(`${file}: stage2Set must be an object of config keys (e.g. "train.lr") to values`);
  const stage2Args = Object.entries(set).flatMap(([k, v]) => {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw new Error(`${file}: stage2Set.${k} must be a string, number or boolean`);
    return ['--set', `${k}=${v}`];
  });
  return { preset: (raw.preset as string | undefined) ?? 'default', seed: (raw.seed as number | undefined) ?? 42, stage2Args };
}
