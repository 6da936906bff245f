import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { memoryLogger } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';
import { CONFIG_FILE, PromptPoolTokens, PromptTokens, TENSORS_FILE } from '../src';

let tmp: string;

describe('saving and loading preference tokens', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-tokens-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it("'prompt': a safetensors file any reader can open plus a JSON config; load restores the exact values", async () => {
    const a = new PromptTokens({ length: 3, init: 'normal', std: 0.3 }, 11);
    a.build(5);
    const dir = path.join(tmp, 'prompt');
    await a.save(dir);
    expect((await fs.readdir(dir)).sort()).toEqual([CONFIG_FILE, TENSORS_FILE].sort());
    const config = JSON.parse(await fs.readFile(path.join(dir, CONFIG_FILE), 'utf8'));
    expect(config).toEqual({ format: 'userpref-preference-tokens', version: 1, kind: 'prompt', length: 3, hiddenSize: 5, init: 'normal', std: 0.3 });
    const st = await SafetensorsFile.open(path.join(dir, TENSORS_FILE));
    expect(st.entries().map((e) => [e.name, e.dtype, e.shape])).toEqual([['prompt', 'F32', [3, 5]]]);
    expect(Array.from(await st.readFloat32('prompt'))).toEqual(Array.from(a.variables()[0].dataSync()));
    await st.close();

    // Load into a built instance (different seed, so different values before) ...
    const b = new PromptTokens({ length: 3 }, 12);
    b.build(5);
    const variable = b.variables()[0];
    expect(Array.from(variable.dataSync())).not.toEqual(Array.from(a.variables()[0].dataSync()));
    await b.load(dir);
    expect(b.variables()[0]).toBe(variable); // same variable: an optimiser holding it keeps working
    expect(Array.from(variable.dataSync())).toEqual(Array.from(a.variables()[0].dataSync()));
    // ... and into one not built yet, which then takes its width from the file.
    const logger = memoryLogger();
    const c = new PromptTokens({ length: 3 }, 13, logger);
    await c.load(dir);
    c.build(5);
    expect(Array.from(c.variables()[0].dataSync())).toEqual(Array.from(a.variables()[0].dataSync()));
    expect(logger.records.some((r) => r.message === 'preference tokens loaded')).toBe(true);
    expect(() => c.build(6)).toThrow("tokens have shape [3, 5] but the text model's hidden size is 6");
    [a, b, c].forEach((t) => t.dispose());
  });

  it('a shape mismatch names the file, the tensor and both shapes', async () => {
    const a = new PromptTokens({ length: 3 }, 1);
    a.build(5);
    const dir = path.join(tmp, 'prompt-3x5');
    await a.save(dir);
    const shorter = new PromptTokens({ length: 2 }, 1);
    await expect(shorter.load(dir)).rejects.toThrow(
      `preference tokens: tensor 'prompt' in ${path.join(dir, TENSORS_FILE)} has shape [3, 5] but the configured length x hidden size is [2, 5]`,
    );
    const narrower = new PromptTokens({ length: 3 }, 1);
    narrower.build(4);
    await expect(narrower.load(dir)).rejects.toThrow(/has shape \[3, 5\] but the configured length x hidden size is \[3, 4\]/);
    const pool = new PromptPoolTokens({}, 1);
    await expect(pool.load(dir)).rejects.toThrow(`preference tokens 'prompt-pool': ${dir} holds 'prompt' tokens, not 'prompt-pool'`);
    await expect(a.load(path.join(tmp, 'nowhere'))).rejects.toThrow(/preference tokens not found: .*nowhere/);
    const empty = path.join(tmp, 'empty');
    await fs.mkdir(empty);
    await expect(a.load(empty)).rejects.toThrow(`preference tokens not found: ${empty} (no ${TENSORS_FILE} (nor a prompt_pool.pt) in it)`);
    [a, narrower].forEach((t) => t.dispose());
  });

  it('reads a bare .safetensors file written by another tool', async () => {
    const file = path.join(tmp, 'bare', 'tokens.safetensors');
    await writeSafetensors(file, [{ name: 'prompt', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }]);
    const t = new PromptTokens({ length: 2 }, 1);
    await t.load(file);
    expect(t.variables()[0].arraySync()).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const wrong = path.join(tmp, 'bare', 'other.safetensors');
    await writeSafetensors(wrong, [{ name: 'weight', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) }]);
    await expect(t.load(wrong)).rejects.toThrow(`preference tokens: ${wrong} has no tensor 'prompt' (it has: weight)`);
    t.dispose();
  });

  it("'prompt-pool': pool and learnable keys round-trip; key-mode mismatches are refused", async () => {
    const a = new PromptPoolTokens({ poolSize: 3, length: 2, topK: 2, keys: 'learnable', pullCoefficient: 0.25 }, 5);
    a.build(4);
    const dir = path.join(tmp, 'pool');
    await a.save(dir);
    const config = JSON.parse(await fs.readFile(path.join(dir, CONFIG_FILE), 'utf8'));
    expect(config).toMatchObject({ kind: 'prompt-pool', length: 2, hiddenSize: 4, poolSize: 3, topK: 2, keys: 'learnable', pullCoefficient: 0.25 });
    const st = await SafetensorsFile.open(path.join(dir, TENSORS_FILE));
    expect(st.entries().map((e) => [e.name, e.shape])).toEqual([
      ['pool', [3, 2, 4]],
      ['keys', [3, 4]],
    ]);
    await st.close();

    const b = new PromptPoolTokens({ poolSize: 3, length: 2, topK: 2, keys: 'learnable' }, 6);
    await b.load(dir);
    a.variables().forEach((v, i) => expect(Array.from(b.variables()[i].dataSync())).toEqual(Array.from(v.dataSync())));

    const meanKeys = new PromptPoolTokens({ poolSize: 3, length: 2, topK: 2 }, 6);
    await expect(meanKeys.load(dir)).rejects.toThrow(`${dir} was saved with keys 'learnable' but this run is configured with keys 'prompt-mean'`);
    const bigger = new PromptPoolTokens({ poolSize: 4, length: 2, topK: 2, keys: 'learnable' }, 6);
    await expect(bigger.load(dir)).rejects.toThrow(/tensor 'pool' in .* has shape \[3, 2, 4\] but the configured poolSize x length x hidden size is \[4, 2, 4\]/);

    const logger = memoryLogger();
    const otherK = new PromptPoolTokens({ poolSize: 3, length: 2, topK: 1, keys: 'learnable' }, 6, logger);
    await otherK.load(dir);
    expect(logger.records.find((r) => r.level === 'warn')?.fields).toMatchObject({ saved: 2, configured: 1 });
    [a, b, otherK].forEach((t) => t.dispose());
  });
});
