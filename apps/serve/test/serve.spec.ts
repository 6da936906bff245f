/**
 * The serve runner as a user runs it (a child process through tools/scripts/run-ts.js) on the
 * tiny checkpoint with a saved adapter: it loads the model once, says which base and adapter it
 * serves, and on SIGTERM finishes the ranking in flight before it exits 0.
 */
import { spawn, type ChildProcess } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { Idefics2Backbone, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { initRuntime } from '@userpref/runtime';

const root = path.resolve(__dirname, '..', '..', '..');
const runTs = path.join(root, 'tools', 'scripts', 'run-ts.js');
const main = path.join(root, 'apps', 'serve', 'src', 'main.ts');

let tmp: string;
let config: string;
let adapter: string;
let child: ChildProcess | null = null;

async function png(seed: number): Promise<Blob> {
  const raw = Buffer.alloc(28 * 24 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (seed + 7) + seed * 13 + ((i / 5) | 0)) % 256;
  return new Blob([await sharp(raw, { raw: { width: 28, height: 24, channels: 3 } }).png().toBuffer()]);
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-serve-'));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: path.join(tmp, 'ckpt'), seed: 0 });
  await initRuntime({ device: 'cpu' });
  const backbone = new Idefics2Backbone({ path: 'ckpt', maxPromptLen: 40 }, { seed: 2, baseDir: tmp });
  await backbone.init();
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 3 + i), 0.05) as tf.Tensor2D);
  adapter = path.join(tmp, 'adapter');
  await backbone.saveAdapter(adapter);
  backbone.dispose();
  config = path.join(tmp, 'run.json');
  await fs.writeFile(config, JSON.stringify({ seed: 1, device: 'cpu', out: 'runs', plugins: { backbone: { package: '@userpref/backbone-idefics2', name: 'idefics2', options: { path: 'ckpt', maxPromptLen: 40 } }, dataset: { package: '@userpref/dataset-pickapic', name: 'pickapic', options: { path: 'no-data-needed', imageSize: 32 } } } }));
}, 120000);

afterAll(async () => {
  child?.kill('SIGKILL');
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

it('serves the adapter it was given and finishes the ranking in flight on SIGTERM, then exits 0', async () => {
  child = spawn(process.execPath, [runTs, main, '--config', config, '--lora_path', adapter, '--port', '0', '--chunk', '1'], { cwd: root, env: { ...process.env, CI: '1' } });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<number | null>((resolve) => child!.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m) {
        clearInterval(timer);
        resolve(m[1]);
      }
      if (child!.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`serve exited ${child!.exitCode}:\n${stderr}`));
      }
    }, 50);
  });
  const model = (await (await fetch(`${url}/v1/model`)).json()) as Record<string, unknown>;
  expect(model).toMatchObject({ backbone: 'idefics2', base: path.join(tmp, 'ckpt'), adapter, tokens: null, imageSize: 32, historySession: true });

  const form = new FormData();
  for (let i = 0; i < 3; i++) form.append('liked', await png(i), `l${i}.png`);
  for (let i = 0; i < 3; i++) form.append('disliked', await png(10 + i), `d${i}.png`);
  for (let i = 0; i < 24; i++) form.append('candidates', await png(20 + i), `c${i}.png`);
  const inFlight = fetch(`${url}/v1/rank`, { method: 'POST', body: form });
  // SIGTERM once the ranking runs (one candidate per forward keeps it running for a while).
  for (let i = 0; i < 1000; i++) {
    const h = (await (await fetch(`${url}/healthz`)).json()) as { queue: { running: number } };
    if (h.queue.running === 1) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGTERM');
  const res = await inFlight;
  expect(res.status).toBe(200);
  const ranking = (await res.json()) as { candidates: unknown[]; referencePairs: number };
  expect(ranking.candidates).toHaveLength(24);
  expect(ranking.referencePairs).toBe(3);
  expect(await exited).toBe(0);
  expect(stderr).toMatch(/SIGTERM: finishing the requests in flight running=1/);
  expect(stderr).toMatch(/\[info\] stopped .*completed=1/);
  child = null;
}, 240000);
