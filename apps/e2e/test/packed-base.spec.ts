/**
 * Training on a 4-bit (NF4) frozen base with activation checkpointing, through the train runner as
 * a user runs it (`--base_bits 4 --gradient_checkpointing 1`) on the tiny checkpoint: a SIGKILLed
 * run resumes to the same final adapter as an uninterrupted one, and the adapter it saves loads on
 * the float32 base (here, and in PEFT when USERPREF_PEFT_PYTHON names a Python with transformers +
 * peft: goldens/make_peft_goldens.py --verify). The logits' difference between the 4-bit and
 * the float32 base under that adapter is printed.
 */
import { spawn, spawnSync } from 'child_process';
import { existsSync, promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { Idefics2Model, LoraAdapter, writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import { generateSynthpick, importDataset } from '@userpref/dataset-pickapic';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile } from '@userpref/safetensors';
import { GOLDEN_DIR, checkFingerprint, goldenPaddedInputs, readGolden, type ModelGolden } from '../../../plugins/backbone-idefics2/test/model-fixtures';

const root = path.resolve(__dirname, '..', '..', '..');
const runTs = path.join(root, 'tools', 'scripts', 'run-ts.js');
const app = (name: string) => path.join(root, 'apps', name, 'src', 'main.ts');
const PACKED = ['--base_bits', '4', '--gradient_checkpointing', '1'];

let tmp: string;
let config: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-e2e-packed-'));
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
      dataset: { package: '@userpref/dataset-pickapic', name: 'pickapic', options: { path: 'processed', refPairNum: 2, imageSize: 32, limit: 12 } },
    },
    train: { train_bz: 2, grad_acc_step: 1, epoch: 1, lr: 1e-3, eval_steps: 0, save_steps: 2, eval_bz: 4, eval_limit: 6, max_steps: 6 },
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

it('trains on a 4-bit base with checkpointing, resumes exactly after SIGKILL, and its adapter loads on the float32 base', async () => {
  run('train', ['--exp_name', 'full', ...PACKED]);
  const adapterDir = path.join(tmp, 'runs', 'full', 'checkpoint-6', 'adapter');
  const full = await tensors(path.join(adapterDir, 'adapter_model.safetensors'));
  // LoRA B starts at zero: training moved it.
  expect(Object.entries(full).some(([k, v]) => k.includes('lora_B') && v.some((x) => x !== 0))).toBe(true);

  const metrics = path.join(tmp, 'runs', 'cut', 'metrics.jsonl');
  const child = spawn(process.execPath, [runTs, app('train'), '--config', config, '--exp_name', 'cut', ...PACKED], { cwd: root, stdio: 'ignore', env: { ...process.env, CI: '1' } });
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
  run('train', ['--exp_name', 'cut', '--resume', ...PACKED]);
  const resumed = await tensors(path.join(tmp, 'runs', 'cut', 'checkpoint-6', 'adapter', 'adapter_model.safetensors'));
  expect(Object.keys(resumed).sort()).toEqual(Object.keys(full).sort());
  for (const k of Object.keys(full)) expect(resumed[k]).toEqual(full[k]);

  // The adapter on the float32 base and on the 4-bit base, on the golden padded batch.
  await initRuntime({ device: 'cpu' });
  const ckpt = path.join(tmp, 'ckpt');
  const golden = await readGolden<ModelGolden>('idefics2_tiny.json');
  await checkFingerprint(ckpt, golden.fingerprint);
  const logitsOn = async (baseBits: 32 | 4) => {
    const model = await Idefics2Model.load(ckpt, { baseBits });
    const adapter = await LoraAdapter.load(model, adapterDir);
    const { ids, am, T, pixelValues, mask } = goldenPaddedInputs(golden);
    const out = model.forward({ inputIds: ids, batch: 2, seqLen: T, attentionMask: am, pixelValues, pixelAttentionMask: mask });
    const v = out.logits.arraySync();
    tf.dispose([out.logits, pixelValues]);
    adapter.detach();
    model.dispose();
    return v;
  };
  const f32 = await logitsOn(32);
  const q4 = await logitsOn(4);
  let num = 0;
  let den = 0;
  f32.flat().forEach((x, i) => {
    num = Math.max(num, Math.abs(q4.flat()[i] - x));
    den = Math.max(den, Math.abs(x));
  });
  console.log(`adapter trained on the 4-bit base: logits on the 4-bit vs the float32 base differ by ${(num / den).toExponential(2)} of max |logit|`);
  expect(Number.isFinite(num)).toBe(true);

  // PEFT reads the adapter on the float32 base and must give our float32-base logits (1e-4).
  const verify = path.join(tmp, 'verify');
  await fs.cp(adapterDir, verify, { recursive: true });
  await fs.writeFile(path.join(verify, 'ours_logits.json'), JSON.stringify({ logits: f32 }));
  const py = process.env.USERPREF_PEFT_PYTHON;
  if (py) {
    const script = path.join(root, 'tools', 'goldens', 'make_peft_goldens.py');
    const r = spawnSync(py, [script, '--checkpoint', ckpt, '--verify', verify, '--golden', path.join(GOLDEN_DIR, 'idefics2_tiny.json')], { encoding: 'utf8' });
    console.log(r.stdout.trim());
    expect(r.stdout).toContain('OK');
  }
}, 600000);
