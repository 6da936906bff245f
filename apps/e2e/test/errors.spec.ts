/**
 * What a user sees when a run's input is missing: one line naming the path, one line saying which
 * command makes it, exit code 1 and no stack trace (`--verbose` adds the stack).
 */
import { spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { generateSynthpick, importDataset } from '@userpref/dataset-pickapic';

const root = path.resolve(__dirname, '..', '..', '..');
const runTs = path.join(root, 'tools', 'scripts', 'run-ts.js');

let tmp: string;
let config: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-errors-'));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: path.join(tmp, 'ckpt'), seed: 0 });
  await generateSynthpick({ preset: 'tiny', seed: 3, outDir: path.join(tmp, 'raw') });
  await importDataset({ from: [path.join(tmp, 'raw')], out: path.join(tmp, 'processed'), seed: 3 });
  config = path.join(tmp, 'run.json');
  await fs.writeFile(config, JSON.stringify({
    device: 'cpu',
    out: 'runs',
    plugins: {
      backbone: { package: '@userpref/backbone-idefics2', name: 'idefics2', options: { path: 'ckpt' } },
      losses: [{ package: '@userpref/loss-preference', name: 'base', weight: 1 }],
      tokens: { package: '@userpref/preference-tokens', name: 'prompt', options: { length: 2 } },
      dataset: { package: '@userpref/dataset-pickapic', name: 'pickapic', options: { path: 'processed', refPairNum: 1, imageSize: 32, limit: 4 } },
    },
    train: { train_bz: 1, max_steps: 1, eval_steps: 0, save_steps: 1 },
    eval: { limit: 2, ref_counts: [1], bootstrap_samples: 10, models: [{ label: 'model' }] },
  }));
}, 120000);

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function run(app: string, args: string[]) {
  const r = spawnSync(process.execPath, [runTs, path.join(root, 'apps', app, 'src', 'main.ts'), '--config', config, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, CI: '1', USERPREF_VERBOSE: '' } });
  // What the runner printed from its error on: log lines ("[info] …") and the native
  // library's own start-up lines come before it.
  const lines = r.stderr.split('\n');
  const first = lines.findIndex((l) => l.startsWith('error: '));
  const errorLines = first < 0 ? [] : lines.slice(first).filter((l) => l && !l.startsWith('['));
  return { status: r.status, stderr: r.stderr, errorLines };
}

const missing = (p: string) => path.join(tmp, p);

it.each([
  ['train', '--checkpoint', 'no-ckpt', 'error: backbone checkpoint not found: ', 'apps/demo/base/idefics2-small-standin'],
  ['train', '--data', 'no-data', 'error: processed dataset not found: ', 'npm start'],
  ['eval', '--lora_path', 'no-adapter', 'error: LoRA adapter not found: ', 'npx nx run train:run'],
])('%s %s <missing>: one line naming the path and what makes it, no stack', (app, flag, name, first, hint) => {
  const r = run(app, [flag, missing(name)]);
  expect(r.status).toBe(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.errorLines).toHaveLength(2);
  expect(r.errorLines[0]).toBe(first + missing(name));
  expect(r.errorLines[1]).toContain(hint);
}, 60000);

it('prints the stack with --verbose', () => {
  const r = run('train', ['--checkpoint', missing('no-ckpt'), '--verbose']);
  expect(r.status).toBe(1);
  expect(r.stderr).toContain(`MissingInputError: backbone checkpoint not found: ${missing('no-ckpt')}`);
  expect(r.stderr).toMatch(/^\s+at /m);
}, 60000);

it('takes a run directory for --lora_path and names missing preference tokens', () => {
  // Stage 1 first, so that the adapter exists and the tokens are the missing part.
  const t = run('train', ['--exp_name', 's1']);
  expect(t.status).toBe(0);
  const r = run('eval', ['--lora_path', path.join(tmp, 'runs', 's1'), '--tokens_path', missing('no-tokens')]);
  expect(r.status).toBe(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.errorLines[0]).toBe(`error: preference tokens not found: ${missing('no-tokens')}`);
  expect(r.errorLines[1]).toContain('npx nx run train2:run');
}, 120000);
