/**
 * The three runners as a user runs them (child processes through tools/scripts/run-ts.js), on the
 * tiny checkpoint and a tiny synthpick set made in a temporary directory.
 */
import { spawn, spawnSync } from 'child_process';
import { existsSync, promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { generateSynthpick, importDataset } from '@userpref/dataset-pickapic';
import { SafetensorsFile } from '@userpref/safetensors';

const root = path.resolve(__dirname, '..', '..', '..');
const runTs = path.join(root, 'tools', 'scripts', 'run-ts.js');
const app = (name: string) => path.join(root, 'apps', name, 'src', 'main.ts');

let tmp: string;
let config: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-e2e-'));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: path.join(tmp, 'ckpt'), seed: 0 });
  await generateSynthpick({ preset: 'tiny', seed: 3, outDir: path.join(tmp, 'raw') });
  await importDataset({ from: [path.join(tmp, 'raw')], out: path.join(tmp, 'processed'), seed: 3 });
  config = path.join(tmp, 'run.json');
  await fs.writeFile(config, JSON.stringify({
    seed: 5,
    device: 'cpu',
    out: 'runs',
    plugins: {
      backbone: { package: '@userpref/backbone-idefics2', name: 'idefics2', options: { path: 'ckpt', maxPromptLen: 40 } },
      losses: [
        { package: '@userpref/loss-preference', name: 'base', weight: 1 },
        { package: '@userpref/loss-preference', name: 'contrastive', weight: 1 },
      ],
      tokens: { package: '@userpref/preference-tokens', name: 'prompt', options: { length: 3 } },
      dataset: { package: '@userpref/dataset-pickapic', name: 'pickapic', options: { path: 'processed', refPairNum: 2, imageSize: 32, limit: 12 } },
    },
    train: { train_bz: 2, grad_acc_step: 1, epoch: 1, lr: 1e-3, eval_steps: 0, save_steps: 2, eval_bz: 4, eval_limit: 6, max_steps: 6 },
    eval: { split: 'test', eval_bz: 4, limit: 8, ref_counts: [0, 2], bootstrap_samples: 100 },
  }));
}, 120000);

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

function run(name: string, args: string[]) {
  const r = spawnSync(process.execPath, [runTs, app(name), '--config', config, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: '1' } });
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} exited ${r.status}:\n${r.stderr.slice(-3000)}`);
  return r;
}

async function tensors(file: string): Promise<Record<string, number[]>> {
  const f = await SafetensorsFile.open(file);
  const out: Record<string, number[]> = {};
  for (const n of f.names()) out[n] = Array.from(await f.readFloat32(n));
  await f.close();
  return out;
}

it('runs train, train2 and eval end to end', async () => {
  run('train', ['--exp_name', 's1', '--max_steps', '2']);
  const s1 = path.join(tmp, 'runs', 's1', 'checkpoint-2');
  expect(existsSync(path.join(s1, 'adapter', 'adapter_config.json'))).toBe(true);
  expect(existsSync(path.join(s1, 'adapter', 'adapter_model.safetensors'))).toBe(true);

  run('train2', ['--exp_name', 's2', '--max_steps', '2', '--lora_path', path.join(s1, 'adapter')]);
  const s2 = path.join(tmp, 'runs', 's2', 'checkpoint-2');
  expect(existsSync(path.join(s2, 'tokens', 'preference_tokens.safetensors'))).toBe(true);
  expect(existsSync(path.join(s2, 'adapter'))).toBe(false); // LoRA frozen in stage 2 by default

  const models = [
    { label: 'stage1', adapter: path.join(s1, 'adapter') },
    { label: 'stage2', adapter: path.join(s1, 'adapter'), tokens: path.join(s2, 'tokens') },
  ];
  const r = run('eval', ['--exp_name', 'ev', '--set', `eval.models=${JSON.stringify(models)}`, '--set', 'eval.paired=[["stage2","stage1"]]']);
  expect(r.stdout).toContain('| stage1 |');
  expect(r.stdout).toContain('| stage2 | stage1 |');
  const report = JSON.parse(await fs.readFile(path.join(tmp, 'runs', 'ev', 'results.json'), 'utf8'));
  expect(report.paired.map((d: { a: string; b: string; n: number }) => [d.a, d.b, d.n])).toEqual([['stage2', 'stage1', report.rows[0].n]]);
  expect(report.rows.map((x: { label: string }) => x.label)).toEqual(['stage1', 'stage2', 'random', 'nearest-reference', 'bayes-optimal']);
  expect(report.curve.map((p: { referencePairs: number }) => p.referencePairs)).toEqual([0, 2]);
  for (const f of ['results.md', 'results.png']) expect(existsSync(path.join(tmp, 'runs', 'ev', f))).toBe(true);
}, 120000);

it('resumes after SIGKILL to the same final weights as an uninterrupted run', async () => {
  run('train', ['--exp_name', 'full']);
  const full = await tensors(path.join(tmp, 'runs', 'full', 'checkpoint-6', 'adapter', 'adapter_model.safetensors'));

  // Kill the second run once it has logged step 3 (checkpoint-2 is on disk, step 3 is lost).
  const metrics = path.join(tmp, 'runs', 'cut', 'metrics.jsonl');
  const child = spawn(process.execPath, [runTs, app('train'), '--config', config, '--exp_name', 'cut'], { cwd: root, stdio: 'ignore', env: { ...process.env, CI: '1' } });
  const killedAt = await new Promise<number>((resolve, reject) => {
    const timer = setInterval(async () => {
      const text = await fs.readFile(metrics, 'utf8').catch(() => '');
      const steps = text.split('\n').filter(Boolean).map((l) => JSON.parse(l).step as number);
      if (steps.length && Math.max(...steps) >= 3) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve(Math.max(...steps));
      }
    }, 20);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') {
        clearInterval(timer);
        reject(new Error(`training ended (code ${code}) before it could be killed`));
      }
    });
  });
  await new Promise((r) => child.on('close', r));
  expect(killedAt).toBeLessThan(6);
  expect(existsSync(path.join(tmp, 'runs', 'cut', 'checkpoint-6'))).toBe(false);

  run('train', ['--exp_name', 'cut', '--resume']);
  const resumed = await tensors(path.join(tmp, 'runs', 'cut', 'checkpoint-6', 'adapter', 'adapter_model.safetensors'));
  expect(Object.keys(resumed).sort()).toEqual(Object.keys(full).sort());
  for (const k of Object.keys(full)) expect(resumed[k]).toEqual(full[k]);
}, 180000);
