/**
 * safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length, a
 * JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}, then
 * the raw little-endian tensor bytes. Reading is lazy: the header is parsed once and each tensor's
 * bytes are read with a positioned read when asked for, so a multi-GB shard is never held whole.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { BYTES_PER, decodeToFloat32, encodeFromFloat32, type Dtype } from './dtype';

export interface TensorEntry {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

export class SafetensorsError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in @userpref/core). */
  readonly expected = true;
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const MAX_HEADER = 100 * 1024 * 1024;

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly handle: fs.FileHandle,
    private readonly byName: Map<string, TensorEntry>,
    private readonly meta: Record<string, string>,
  ) {}

  static async open(file: string): Promise<SafetensorsFile> {
    const handle = await fs.open(file, 'r').catch((e: Error) => {
      throw new SafetensorsError(`cannot open safetensors file ${file}: ${e.message}`);
    });
    try {
      const { size } = await handle.stat();
      if (size < 8) throw new SafetensorsError(`${file}: too short to be a safetensors file (${size} bytes)`);
      const lenBuf = Buffer.alloc(8);
      await handle.read(lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER || headerLen + 8 > size) throw new SafetensorsError(`${file}: header length ${headerLen} does not fit a file of ${size} bytes`);
      const headerBuf = Buffer.alloc(headerLen);
      await handle.read(headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch (e) {
        throw new SafetensorsError(`${file}: header is not valid JSON (${(e as Error).message})`);
      }
      const dataStart = 8 + headerLen;
      const byName = new Map<string, TensorEntry>();
      for (const [name, v] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const info = v as { dtype: Dtype; shape: number[]; data_offsets: [number, number] };
        if (!(info.dtype in BYTES_PER)) throw new SafetensorsError(`${file}: tensor '${name}' has unsupported dtype ${info.dtype}`);
        const [b, e] = info.data_offsets;
        const numel = info.shape.reduce((a, c) => a * c, 1);
        if (e - b !== numel * BYTES_PER[info.dtype]) throw new SafetensorsError(`${file}: tensor '${name}' byte range ${b}..${e} does not match shape [${info.shape}] ${info.dtype}`);
        if (dataStart + e > size) throw new SafetensorsError(`${file}: tensor '${name}' extends past the end of the file (truncated?)`);
        byName.set(name, { name, dtype: info.dtype, shape: info.shape, begin: dataStart + b, end: dataStart + e });
      }
      return new SafetensorsFile(file, handle, byName, (header.__metadata__ as Record<string, string>) ?? {});
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  entries(): TensorEntry[] {
    return [...this.byName.values()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.byName.get(name);
    if (!e) throw new SafetensorsError(`${this.path}: no tensor named '${name}'`);
    return e;
  }

  metadata(): Record<string, string> {
    return { ...this.meta };
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    const buf = Buffer.alloc(e.end - e.begin);
    const { bytesRead } = await this.handle.read(buf, 0, buf.length, e.begin);
    if (bytesRead !== buf.length) throw new SafetensorsError(`${this.path}: short read for '${name}'`);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** The tensor's values as float32, whatever its stored dtype. */
  async readFloat32(name: string): Promise<Float32Array> {
    return decodeToFloat32(await this.readBytes(name), this.entry(name).dtype);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  data: Float32Array;
}

/**
 * Writes a safetensors file atomically (temp file + rename): a crash never leaves a half file
 * under the final name. Tensors are written in the given order, one at a time.
 */
export async function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new SafetensorsError(`duplicate tensor name '${t.name}'`);
    seen.add(t.name);
    const numel = t.shape.reduce((a, c) => a * c, 1);
    if (numel !== t.data.length) throw new SafetensorsError(`tensor '${t.name}': shape [${t.shape}] needs ${numel} values, got ${t.data.length}`);
    const bytes = numel * BYTES_PER[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBytes.length));
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await fs.open(tmp, 'w');
  try {
    await handle.write(lenBuf);
    await handle.write(headerBytes);
    for (const t of tensors) {
      const bytes = encodeFromFloat32(t.data, t.dtype);
      await handle.write(bytes);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, file);
}
