/**
 * On-disk form of preference tokens: a directory with `preference_tokens.safetensors` (the
 * tensors, float32) and `preference_tokens.json` (what they are: kind, length, hidden size and
 * the options they were made with), so any tool that reads safetensors can use them. Reading
 * also accepts a bare .safetensors file (the JSON next to it is optional then) and the paper's
 * `prompt_pool.pt` (see torch-import.ts).
 */
import { promises as fs } from 'fs';
import { MissingInputError } from '@userpref/core';
import * as path from 'path';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';
import { readPaperPromptPool } from './torch-import';

export const TENSORS_FILE = 'preference_tokens.safetensors';
export const CONFIG_FILE = 'preference_tokens.json';
export const FORMAT = 'userpref-preference-tokens';
export const FORMAT_VERSION = 1;

export type TokensKind = 'prompt' | 'prompt-pool';

export interface TokensFileConfig {
  format: typeof FORMAT;
  version: number;
  kind: TokensKind;
  /** Tokens per prompt. */
  length: number;
  hiddenSize: number;
  /** Everything else the implementation wants to record (pool size, top-k, key mode, init ...). */
  [key: string]: unknown;
}

export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

export interface StoredTokens {
  /** Null when the source has no config (a bare .safetensors or the paper's .pt). */
  config: TokensFileConfig | null;
  tensors: Map<string, StoredTensor>;
  /** The file the tensors came from, for messages. */
  source: string;
}

export async function saveTokens(dir: string, config: TokensFileConfig, tensors: ReadonlyArray<{ name: string } & StoredTensor>): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await writeSafetensors(
    path.join(dir, TENSORS_FILE),
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
    { format: 'pt', kind: config.kind },
  );
  const tmp = path.join(dir, `${CONFIG_FILE}.tmp-${process.pid}`);
  await fs.writeFile(tmp, JSON.stringify(config, null, 2) + '\n');
  await fs.rename(tmp, path.join(dir, CONFIG_FILE));
}

async function readConfig(file: string): Promise<TokensFileConfig> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new Error(`preference tokens: cannot read ${file}: ${(e as Error).message}`);
  }
  const c = parsed as TokensFileConfig;
  if (!c || c.format !== FORMAT) throw new Error(`preference tokens: ${file} is not a preference-tokens config (format ${JSON.stringify(c?.format)}, expected "${FORMAT}")`);
  if (c.version !== FORMAT_VERSION) throw new Error(`preference tokens: ${file} has format version ${c.version}; this build reads version ${FORMAT_VERSION}`);
  return c;
}

async function readSafetensorsTensors(file: string): Promise<Map<string, StoredTensor>> {
  const st = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, StoredTensor>();
    for (const e of st.entries()) out.set(e.name, { shape: [...e.shape], data: await st.readFloat32(e.name) });
    return out;
  } finally {
    await st.close();
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/** Reads a directory saved by `saveTokens`, a .safetensors file, or the paper's prompt_pool.pt. */
export async function readTokens(source: string): Promise<StoredTokens> {
  const stat = await fs.stat(source).catch(() => null);
  if (!stat) throw new MissingInputError('tokens', source);
  if (stat.isDirectory()) {
    const tensorsFile = path.join(source, TENSORS_FILE);
    const configFile = path.join(source, CONFIG_FILE);
    if (!(await exists(tensorsFile))) {
      const pt = path.join(source, 'prompt_pool.pt');
      if (await exists(pt)) return readTokens(pt);
      throw new MissingInputError('tokens', source, `no ${TENSORS_FILE} (nor a prompt_pool.pt) in it`);
    }
    if (!(await exists(configFile))) throw new Error(`preference tokens: ${source} has ${TENSORS_FILE} but no ${CONFIG_FILE}`);
    return { config: await readConfig(configFile), tensors: await readSafetensorsTensors(tensorsFile), source: tensorsFile };
  }
  if (source.endsWith('.safetensors')) {
    const sibling = path.join(path.dirname(source), CONFIG_FILE);
    const config = (await exists(sibling)) ? await readConfig(sibling) : null;
    return { config, tensors: await readSafetensorsTensors(source), source };
  }
  const prompt = await readPaperPromptPool(source);
  return { config: null, tensors: new Map([['prompt', prompt]]), source };
}

/** A tensor that must exist with an exact shape; the error names the file, the tensor and both shapes. */
export function expectTensor(stored: StoredTokens, name: string, shape: number[], what: string): StoredTensor {
  const t = stored.tensors.get(name);
  if (!t) {
    throw new Error(`preference tokens: ${stored.source} has no tensor '${name}' (it has: ${[...stored.tensors.keys()].join(', ') || 'none'})`);
  }
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`preference tokens: tensor '${name}' in ${stored.source} has shape [${t.shape.join(', ')}] but ${what} is [${shape.join(', ')}]`);
  }
  return t;
}
