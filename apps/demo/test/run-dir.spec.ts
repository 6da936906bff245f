/** The demo's run directory: outputs of another base are moved aside, never mixed, never deleted. */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RUN_RECORD, baseFingerprint, claimRunDir, paramsHash } from '../src/run-dir';

describe('claimRunDir', () => {
  let tmp: string;
  let base: string;
  let runs: string;

  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'demo-run-dir-'));
    base = path.join(tmp, 'base');
    runs = path.join(tmp, 'runs', 'demo');
    await fs.mkdir(base);
    await fs.writeFile(path.join(base, 'model.safetensors'), 'weights v1');
  });

  afterEach(() => fs.rm(tmp, { recursive: true, force: true }));

  it('fingerprints the safetensors bytes (sha256 of name, size and content)', async () => {
    const want = createHash('sha256').update('model.safetensors\0' + '10\0').update('weights v1').digest('hex');
    expect(await baseFingerprint(base)).toBe(want);
    await fs.rm(path.join(base, 'model.safetensors'));
    await expect(baseFingerprint(base)).rejects.toThrow(/no \.safetensors weights/);
  });

  it('keeps the outputs of the same base and moves those of another aside, intact', async () => {
    expect(await claimRunDir(runs, base)).toBeNull();
    await fs.mkdir(path.join(runs, 'stage1'));
    await fs.writeFile(path.join(runs, 'stage1', 'marker'), 'first base');
    expect(await claimRunDir(runs, base)).toBeNull();
    expect(await fs.readFile(path.join(runs, 'stage1', 'marker'), 'utf8')).toBe('first base');

    await fs.writeFile(path.join(base, 'model.safetensors'), 'weights v2');
    const aside = await claimRunDir(runs, base, new Date('2026-11-26T16:00:00.000Z'));
    expect(aside).toBe(`${runs}.stale-2026-11-26T16-00-00-000Z`);
    expect(await fs.readFile(path.join(aside!, 'stage1', 'marker'), 'utf8')).toBe('first base');
    expect(await fs.readdir(runs)).toEqual([RUN_RECORD]);
    expect(JSON.parse(await fs.readFile(path.join(runs, RUN_RECORD), 'utf8')).weights).toBe(await baseFingerprint(base));
  });

  it('moves aside outputs trained on another synthpick world (preset or seed), or on an unrecorded one', async () => {
    const camps = { preset: 'camps-xl', seed: 42 };
    // A record written before worlds were recorded names none: its outputs may belong to any world.
    expect(await claimRunDir(runs, base)).toBeNull();
    await fs.mkdir(path.join(runs, 'stage1'));
    expect(await claimRunDir(runs, base)).toBeNull();
    expect(await claimRunDir(runs, base, new Date('2026-12-03T22:00:00.000Z'), camps)).toBe(`${runs}.stale-2026-12-03T22-00-00-000Z`);
    expect(JSON.parse(await fs.readFile(path.join(runs, RUN_RECORD), 'utf8')).world).toEqual(camps);
    await fs.mkdir(path.join(runs, 'mine'));
    expect(await claimRunDir(runs, base, new Date(), camps)).toBeNull();
    expect(await fs.readdir(runs)).toContain('mine');
    const aside = await claimRunDir(runs, base, new Date('2026-12-03T22:01:00.000Z'), { ...camps, seed: 43 });
    expect(aside).toBe(`${runs}.stale-2026-12-03T22-01-00-000Z`);
    expect(await fs.readdir(aside!)).toContain('mine');
    await fs.mkdir(path.join(runs, 'eval'));
    expect(await claimRunDir(runs, base, new Date('2026-12-03T22:02:00.000Z'), { ...camps, preset: 'camps-large', seed: 43 })).not.toBeNull();
    // A preset whose parameters changed (same name and seed) is another world.
    const v1 = { ...camps, preset: 'camps-large', seed: 43, params: paramsHash({ users: 240, clusters: 2 }) };
    await claimRunDir(runs, base, new Date(), v1);
    await fs.mkdir(path.join(runs, 'stage2'));
    expect(await claimRunDir(runs, base, new Date(), { ...v1, params: paramsHash({ clusters: 2, users: 240 }) })).toBeNull();
    expect(await claimRunDir(runs, base, new Date('2026-12-03T22:03:00.000Z'), { ...v1, params: paramsHash({ users: 240, clusters: 4 }) })).toBe(`${runs}.stale-2026-12-03T22-03-00-000Z`);
  });

  it('moves aside outputs that no record vouches for (runs made before the record existed)', async () => {
    await fs.mkdir(path.join(runs, 'eval'), { recursive: true });
    const aside = await claimRunDir(runs, base);
    expect(aside).not.toBeNull();
    expect(await fs.readdir(aside!)).toEqual(['eval']);
  });
});
