/**
 * The dataset command line: `synth --params` overrides the preset's parameters (recorded in the
 * truth sidecar) and refuses parameters it does not know, naming them, before writing anything.
 */
import * as fs from 'fs';
import * as path from 'path';
import { main } from '../src/cli';
import { TRUTH_FILE, type SynthpickTruth } from '../src/synthpick';
import { tmpDir } from './helpers';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const so = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const se = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(argv), out, err };
  } finally {
    so.mockRestore();
    se.mockRestore();
  }
}

describe('dataset cli synth --params', () => {
  it('overrides the preset and records the parameters in the truth sidecar', async () => {
    const dir = tmpDir('cli-synth');
    const r = await run(['synth', '--preset', 'tiny', '--seed', '3', '--out', dir, '--params', '{"clusters":2,"tasteGroups":["colour"],"users":6}']);
    expect(r.code).toBe(0);
    const truth = JSON.parse(fs.readFileSync(path.join(dir, TRUTH_FILE), 'utf8')) as SynthpickTruth;
    expect(truth.params).toMatchObject({ clusters: 2, tasteGroups: ['colour'], users: 6, comparisonsPerUser: 12 });
    expect(new Set(truth.users.map((u) => u.cluster))).toEqual(new Set([0, 1]));
    expect(truth.users).toHaveLength(6);
    expect(r.out).toMatch(/6 users/);
  });

  it('refuses unknown parameters and bad JSON without writing anything', async () => {
    const dir = path.join(tmpDir('cli-bad'), 'out');
    const unknown = await run(['synth', '--preset', 'tiny', '--out', dir, '--params', '{"clusterz":2}']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown parameter\(s\) clusterz/);
    const bad = await run(['synth', '--preset', 'tiny', '--out', dir, '--params', '{clusters:2']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--params must be a JSON object/);
    const list = await run(['synth', '--preset', 'tiny', '--out', dir, '--params', '[2]']);
    expect(list.code).toBe(2);
    expect(list.err).toMatch(/--params must be a JSON object, got \[2\]/);
    const group = await run(['synth', '--preset', 'tiny', '--out', dir, '--params', '{"tasteGroups":["hue"]}']);
    expect(group.code).toBe(2);
    expect(group.err).toMatch(/unknown taste group 'hue'/);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
