/**
 * A Hugging Face checkpoint directory: `model.safetensors`, or shards listed in
 * `model.safetensors.index.json` ({metadata, weight_map: {tensor: shard file}}). Tensors are read
 * one at a time from the shard that holds them, so loading never needs two copies of the weights.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { SafetensorsError, SafetensorsFile, writeSafetensors, type TensorEntry, type TensorToWrite } from './file';
import { BYTES_PER } from './dtype';

export class CheckpointReader {
  private constructor(
    readonly dir: string,
    private readonly files: Map<string, SafetensorsFile>,
    private readonly where: Map<string, SafetensorsFile>,
  ) {}

  /**
   * Opens `dir` (or a single .safetensors file). `fileName` selects the weights file,
   * e.g. 'adapter_model.safetensors'; default: model.safetensors[.index.json].
   */
  static async open(dirOrFile: string, fileName = 'model.safetensors'): Promise<CheckpointReader> {
    const stat = await fs.stat(dirOrFile).catch(() => null);
    if (!stat) throw new SafetensorsError(`checkpoint not found: ${dirOrFile}`);
    const files = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    const add = async (file: string) => {
      let f = files.get(file);
      if (!f) {
        f = await SafetensorsFile.open(file);
        files.set(file, f);
      }
      return f;
    };
    if (stat.isFile()) {
      const f = await add(dirOrFile);
      for (const n of f.names()) where.set(n, f);
      return new CheckpointReader(path.dirname(dirOrFile), files, where);
    }
    const single = path.join(dirOrFile, fileName);
    const index = `${single}.index.json`;
    if (await exists(index)) {
      let parsed: { weight_map?: Record<string, string> };
      try {
        parsed = JSON.parse(await fs.readFile(index, 'utf8'));
      } catch (e) {
        throw new SafetensorsError(`${index}: not valid JSON (${(e as Error).message})`);
      }
      if (!parsed.weight_map) throw new SafetensorsError(`${index}: missing 'weight_map'`);
      for (const [tensor, shard] of Object.entries(parsed.weight_map)) {
        const f = await add(path.join(dirOrFile, shard));
        if (!f.has(tensor)) throw new SafetensorsError(`${index} maps '${tensor}' to ${shard}, which does not contain it`);
        where.set(tensor, f);
      }
    } else if (await exists(single)) {
      const f = await add(single);
      for (const n of f.names()) where.set(n, f);
    } else {
      throw new SafetensorsError(`${dirOrFile}: neither ${fileName} nor ${fileName}.index.json exists`);
    }
    return new CheckpointReader(dirOrFile, files, where);
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  entry(name: string): TensorEntry {
    return this.file(name).entry(name);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    return this.file(name).readFloat32(name);
  }

  private file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(`checkpoint ${this.dir} has no tensor named '${name}'`);
    return f;
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Writes tensors as one `model.safetensors` (when they fit in `maxShardBytes`) or as
 * `model-0000i-of-0000N.safetensors` shards plus `model.safetensors.index.json`, the layout
 * transformers' save_pretrained produces.
 */
export async function writeShardedCheckpoint(
  dir: string,
  tensors: readonly TensorToWrite[],
  options: { maxShardBytes?: number; metadata?: Record<string, string>; fileName?: string } = {},
): Promise<string[]> {
  const max = options.maxShardBytes ?? 5 * 1024 ** 3;
  const base = (options.fileName ?? 'model.safetensors').replace(/\.safetensors$/, '');
  const shards: TensorToWrite[][] = [[]];
  let size = 0;
  let total = 0;
  for (const t of tensors) {
    const bytes = t.data.length * BYTES_PER[t.dtype];
    if (size > 0 && size + bytes > max) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += bytes;
    total += bytes;
  }
  const metadata = { format: 'pt', ...(options.metadata ?? {}) };
  if (shards.length === 1) {
    const file = path.join(dir, `${base}.safetensors`);
    await writeSafetensors(file, shards[0], metadata);
    return [file];
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${base}-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    await writeSafetensors(path.join(dir, name), shards[i], metadata);
    for (const t of shards[i]) weightMap[t.name] = name;
    files.push(path.join(dir, name));
  }
  const indexFile = path.join(dir, `${base}.safetensors.index.json`);
  await fs.writeFile(indexFile, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
  return [...files, indexFile];
}
