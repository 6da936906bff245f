/**
 * Training checkpoints: `<out>/<exp>/checkpoint-<step>/` holds the adapter (PEFT directory), the
 * preference tokens, the optimizer moments (safetensors) and trainer_state.json (step, epoch,
 * data position, seed). Written into a temporary sibling and renamed, so a kill -9 at any moment
 * leaves either the previous checkpoint or the complete new one.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';
import type { AdamWState } from './adamw';

export interface TrainerState {
  stage: 1 | 2;
  step: number;
  totalSteps: number;
  epoch: number;
  /** Next micro-batch index within the epoch's order. */
  micro: number;
  seed: number;
  examplesSeen: number;
  bestValAccuracy?: number;
  /** Free-form: options the run was started with, to warn when a resume changes them. */
  options: Record<string, unknown>;
}

export interface CheckpointWriters {
  saveAdapter?: (dir: string) => Promise<void>;
  saveTokens?: (dir: string) => Promise<void>;
}

export async function saveCheckpoint(runDir: string, state: TrainerState, optimizer: AdamWState, writers: CheckpointWriters): Promise<string> {
  const final = path.join(runDir, `checkpoint-${state.step}`);
  const tmp = `${final}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  if (writers.saveAdapter) await writers.saveAdapter(path.join(tmp, 'adapter'));
  if (writers.saveTokens) await writers.saveTokens(path.join(tmp, 'tokens'));
  const tensors = Object.entries(optimizer.moments).flatMap(([name, { m, v, shape }]) => [
    { name: `${name}.exp_avg`, dtype: 'F32' as const, shape, data: m },
    { name: `${name}.exp_avg_sq`, dtype: 'F32' as const, shape, data: v },
  ]);
  await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), tensors, { step: String(optimizer.step) });
  await fs.writeFile(path.join(tmp, 'trainer_state.json'), JSON.stringify(state, null, 2) + '\n');
  await fs.rm(final, { recursive: true, force: true });
  await fs.rename(tmp, final);
  return final;
}

/** The newest complete checkpoint in a run directory, or null. */
export async function latestCheckpoint(runDir: string): Promise<string | null> {
  const names = await fs.readdir(runDir).catch(() => [] as string[]);
  const steps = names
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const s of steps) {
    const dir = path.join(runDir, `checkpoint-${s}`);
    const ok = await fs.stat(path.join(dir, 'trainer_state.json')).then(
      () => true,
      () => false,
    );
    if (ok) return dir;
  }
  return null;
}

export async function loadCheckpoint(dir: string): Promise<{ state: TrainerState; optimizer: AdamWState }> {
  const state = JSON.parse(await fs.readFile(path.join(dir, 'trainer_state.json'), 'utf8')) as TrainerState;
  const f = await SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
  const moments: AdamWState['moments'] = {};
  for (const e of f.entries()) {
    const m = /^(.*)\.(exp_avg|exp_avg_sq)$/.exec(e.name);
    if (!m) continue;
    const slot = (moments[m[1]] ??= { m: new Float32Array(0), v: new Float32Array(0), shape: e.shape });
    const data = await f.readFloat32(e.name);
    if (m[2] === 'exp_avg') slot.m = data;
    else slot.v = data;
  }
  const step = Number(f.metadata().step ?? state.step);
  await f.close();
  return { state, optimizer: { step, moments } };
}

/**
 * What a user may give for a trained adapter or trained preference tokens: the directory itself,
 * a checkpoint (`checkpoint-N`, whose `adapter/` or `tokens/` is taken) or a whole run directory
 * (`<out>/<exp_name>`, whose newest complete checkpoint is taken). Anything else is returned as it
 * is, so the loader reports what is missing there.
 */
export async function resolveTrainedPath(given: string, part: 'adapter' | 'tokens'): Promise<string> {
  const isDir = (p: string) => fs.stat(p).then((s) => s.isDirectory(), () => false);
  const hasFile = (p: string) => fs.stat(p).then((s) => s.isFile(), () => false);
  const marker = part === 'adapter' ? 'adapter_config.json' : 'preference_tokens.json';
  if (!(await isDir(given)) || (await hasFile(path.join(given, marker)))) return given;
  if (await isDir(path.join(given, part))) return path.join(given, part);
  const latest = await latestCheckpoint(given);
  return latest ? path.join(latest, part) : given;
}
