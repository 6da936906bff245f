/** --lora_path / --tokens_path accept the adapter itself, a checkpoint or a whole run directory. */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { resolveTrainedPath } from '../src';

let run: string;

beforeAll(async () => {
  run = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-resolve-'));
  for (const step of [2, 10, 12]) {
    const ck = path.join(run, `checkpoint-${step}`);
    await fs.mkdir(path.join(ck, 'adapter'), { recursive: true });
    await fs.mkdir(path.join(ck, 'tokens'), { recursive: true });
    await fs.writeFile(path.join(ck, 'adapter', 'adapter_config.json'), '{}');
    await fs.writeFile(path.join(ck, 'tokens', 'preference_tokens.json'), '{}');
    // checkpoint-12 was interrupted before its state was written: not complete, never chosen.
    if (step !== 12) await fs.writeFile(path.join(ck, 'trainer_state.json'), '{}');
  }
});

afterAll(async () => {
  await fs.rm(run, { recursive: true, force: true });
});

it('takes the newest complete checkpoint of a run directory (numerically, not by name)', async () => {
  expect(await resolveTrainedPath(run, 'adapter')).toBe(path.join(run, 'checkpoint-10', 'adapter'));
  expect(await resolveTrainedPath(run, 'tokens')).toBe(path.join(run, 'checkpoint-10', 'tokens'));
});

it('takes the part of a checkpoint directory, and the adapter or tokens directory itself', async () => {
  expect(await resolveTrainedPath(path.join(run, 'checkpoint-2'), 'adapter')).toBe(path.join(run, 'checkpoint-2', 'adapter'));
  expect(await resolveTrainedPath(path.join(run, 'checkpoint-2', 'adapter'), 'adapter')).toBe(path.join(run, 'checkpoint-2', 'adapter'));
  expect(await resolveTrainedPath(path.join(run, 'checkpoint-2', 'tokens'), 'tokens')).toBe(path.join(run, 'checkpoint-2', 'tokens'));
});

it('returns anything else unchanged, for the loader to name what is missing', async () => {
  expect(await resolveTrainedPath(path.join(run, 'nope'), 'adapter')).toBe(path.join(run, 'nope'));
  const file = path.join(run, 'checkpoint-2', 'tokens', 'preference_tokens.json');
  expect(await resolveTrainedPath(file, 'tokens')).toBe(file);
});
