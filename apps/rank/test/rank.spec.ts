/**
 * The rank command as a user runs it (a child process through tools/scripts/run-ts.js) on the
 * tiny checkpoint with a saved adapter: the ranked table and --json agree with each other and
 * with the library's order rule; a non-image candidate, unpaired history images and a missing
 * adapter each fail with one line naming the culprit (no stack trace).
 */
import { spawnSync } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { Idefics2Backbone, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { initRuntime } from '@userpref/runtime';

const root = path.resolve(__dirname, '..', '..', '..');
const runTs = path.join(root, 'tools', 'scripts', 'run-ts.js');
const main = path.join(root, 'apps', 'rank', 'src', 'main.ts');

let tmp: string;
let config: string;
let adapter: string;

async function image(file: string, seed: number, format: 'png' | 'jpeg' | 'webp'): Promise<void> {
  const w = 24 + (seed % 3) * 6;
  const raw = Buffer.alloc(w * 20 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (seed + 5) + seed * 29 + ((i / 11) | 0)) % 256;
  await sharp(raw, { raw: { width: w, height: 20, channels: 3 } }).toFormat(format).toFile(file);
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-rank-'));
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: path.join(tmp, 'ckpt'), seed: 0 });
  await initRuntime({ device: 'cpu' });
  const backbone = new Idefics2Backbone({ path: 'ckpt', usePrompt: true, maxPromptLen: 40 }, { seed: 2, baseDir: tmp });
  await backbone.init();
  for (const [i, v] of backbone.adapterVariables().entries()) if (i % 2 === 1) v.assign(tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 7 + i), 0.05) as tf.Tensor2D);
  adapter = path.join(tmp, 'adapter');
  await backbone.saveAdapter(adapter);
  backbone.dispose();
  for (const d of ['liked', 'disliked', 'cands']) await fs.mkdir(path.join(tmp, d));
  await image(path.join(tmp, 'liked', 'l0.png'), 1, 'png');
  await image(path.join(tmp, 'liked', 'l1.jpg'), 2, 'jpeg');
  await image(path.join(tmp, 'disliked', 'd0.webp'), 3, 'webp');
  await image(path.join(tmp, 'disliked', 'd1.png'), 4, 'png');
  for (let i = 0; i < 5; i++) await image(path.join(tmp, 'cands', `c${i}.${['png', 'jpg', 'webp'][i % 3]}`), 10 + i, (['png', 'jpeg', 'webp'] as const)[i % 3]);
  config = path.join(tmp, 'run.json');
  await fs.writeFile(config, JSON.stringify({ seed: 1, device: 'cpu', out: 'runs', plugins: { backbone: { package: '@userpref/backbone-idefics2', name: 'idefics2', options: { path: 'ckpt', maxPromptLen: 40 } } } }));
}, 120000);

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

function rank(args: string[]) {
  return spawnSync(process.execPath, [runTs, main, '--config', config, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: '1' } });
}

const history = () => ['--liked', path.join(tmp, 'liked', 'l0.png'), path.join(tmp, 'liked', 'l1.jpg'), '--disliked', path.join(tmp, 'disliked', 'd0.webp'), path.join(tmp, 'disliked', 'd1.png')];

it('prints the candidates ranked, as a table and as JSON, the same order both ways', () => {
  const json = rank(['--lora_path', adapter, ...history(), '--candidates', path.join(tmp, 'cands'), '--prompt', 'a red cube', '--json']);
  expect(json.stderr).not.toMatch(/^error:/m);
  expect(json.status).toBe(0);
  const r = JSON.parse(json.stdout) as { method: string; referencePairs: number; order: number[]; candidates: Array<{ name: string; rank: number; score: number; probability: number }> };
  expect(r.method).toBe('history-session');
  expect(r.referencePairs).toBe(2);
  expect(r.candidates.map((c) => path.basename(c.name))).toEqual(['c0.png', 'c1.jpg', 'c2.webp', 'c3.png', 'c4.jpg']);
  const scores = r.order.map((i) => r.candidates[i].score);
  expect([...scores].sort((a, b) => b - a)).toEqual(scores);
  for (const c of r.candidates) expect(c.probability).toBeCloseTo(1 / (1 + Math.exp(-c.score)), 6);
  expect(json.stderr).toMatch(/scored 5\/5 candidates/);

  const table = rank(['--lora_path', adapter, ...history(), '--candidates', path.join(tmp, 'cands'), '--prompt', 'a red cube']);
  expect(table.status).toBe(0);
  const rows = table.stdout.trim().split('\n').slice(2).map((l) => l.trim().split(/\s+/));
  expect(rows.map((row) => path.basename(row[3]))).toEqual(r.order.map((i) => path.basename(r.candidates[i].name)));
  expect(rows.map((row) => Number(row[1]))).toEqual(r.order.map((i) => Number(r.candidates[i].score.toFixed(4))));
}, 180000);

it('names a candidate that is not an image, unpaired history images and a missing adapter in one line', async () => {
  const bad = path.join(tmp, 'notes.png');
  await fs.writeFile(bad, 'these are notes, not pixels');
  const notImage = rank(['--lora_path', adapter, ...history(), '--candidates', path.join(tmp, 'cands'), bad]);
  expect(notImage.status).toBe(1);
  expect(notImage.stderr.trim().split('\n').pop()).toBe(`error: ${bad}: not an image (JPEG, PNG or WebP expected)`);
  expect(notImage.stderr).not.toMatch(/\n\s+at /);

  const unpaired = rank(['--lora_path', adapter, '--liked', path.join(tmp, 'liked'), '--disliked', path.join(tmp, 'disliked', 'd0.webp'), '--candidates', path.join(tmp, 'cands')]);
  expect(unpaired.status).toBe(1);
  expect(unpaired.stderr).toMatch(/^error: the history is made of pairs: 2 liked and 1 disliked images/m);

  const noAdapter = rank(['--lora_path', path.join(tmp, 'no-such-adapter'), ...history(), '--candidates', path.join(tmp, 'cands')]);
  expect(noAdapter.status).toBe(1);
  expect(noAdapter.stderr).toMatch(/^error: LoRA adapter not found: .*no-such-adapter$/m);
  expect(noAdapter.stderr).not.toMatch(/\n\s+at /);
}, 180000);
