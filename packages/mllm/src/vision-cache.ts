/**
 * Cache of the frozen vision tower's output per image (SPEC §8: the original re-encoded all 17
 * images of an example twice per step). An entry is keyed by the image's content hash and is valid
 * for one state of the vision weights:
 *
 * - memory: LRU within a byte budget, held as plain Float32Arrays outside the wasm heap (which is
 *   limited to a few GB and needed by training), copied into one tensor per prepared batch;
 * - disk (optional): one safetensors file per image, named `<content hash>-<fingerprint>.safetensors`,
 *   where the fingerprint is a SHA-256 of the vision weights (and of everything else the output
 *   depends on: vision config, image preprocessing, LoRA on vision modules if any). A new process or
 *   a new Backbone on the same checkpoint reuses the files; other weights never read them.
 *
 * Invalidation: the weight tensors' data ids are compared on every lookup (cheap). Replacing a
 * weight, assigning a variable or training a LoRA on the tower gives new data ids: the memory
 * entries are dropped and the fingerprint is recomputed (only when a disk cache needs it).
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import type * as tf from '@tensorflow/tfjs-core';
import { SafetensorsFile, writeSafetensors } from '@userpref/safetensors';

/** The tower's output for one image. */
export interface VisionEntry {
  /** [patches, hidden] row-major. */
  readonly hidden: Float32Array;
  readonly patches: number;
  readonly width: number;
  /** [patches], 1 = real patch. */
  readonly patchValid: Uint8Array;
}

export interface VisionCacheStats {
  /** Lookups served from memory. */
  hits: number;
  /** Lookups served from a disk file. */
  diskHits: number;
  /** Lookups that had to run the tower. */
  misses: number;
  /** Memory entries dropped for the byte budget. */
  evictions: number;
  /** Times the vision weights changed and the cache was invalidated. */
  invalidations: number;
  /** Disk files that could not be read or written (counted, then recomputed / skipped). */
  diskErrors: number;
  entries: number;
  bytes: number;
}

export interface VisionCacheOptions {
  /** Memory budget in bytes (0 disables the memory cache). */
  readonly maxBytes: number;
  /** Directory for the disk cache, or null. */
  readonly dir: string | null;
  /** The tensors the tower's output depends on, labelled, in a fixed order. */
  readonly tensors: () => ReadonlyArray<readonly [string, tf.Tensor]>;
  /** Everything else the output depends on (configs), as JSON-able data. */
  readonly context: unknown;
  readonly onWarn?: (message: string, fields: Record<string, unknown>) => void;
}

function entryBytes(e: VisionEntry): number {
  return e.hidden.byteLength + e.patchValid.byteLength;
}

export class VisionCache {
  private readonly memory = new Map<string, VisionEntry>();
  private bytes = 0;
  private signature: readonly object[] = [];
  private fingerprintValue: string | null = null;
  private readonly counters = { hits: 0, diskHits: 0, misses: 0, evictions: 0, invalidations: 0, diskErrors: 0 };

  constructor(private readonly options: VisionCacheOptions) {
    if (!(options.maxBytes >= 0)) throw new Error(`imageCacheBytes must be >= 0, got ${options.maxBytes}`);
    this.signature = this.currentSignature();
  }

  stats(): VisionCacheStats {
    return { ...this.counters, entries: this.memory.size, bytes: this.bytes };
  }

  private currentSignature(): object[] {
    return this.options.tensors().map(([, t]) => t.dataId);
  }

  /** Drops memory entries when the weights changed since the last call. */
  private checkWeights(): void {
    const now = this.currentSignature();
    const same = now.length === this.signature.length && now.every((id, i) => id === this.signature[i]);
    if (same) return;
    this.signature = now;
    this.fingerprintValue = null;
    this.clearMemory();
    this.counters.invalidations++;
  }

  /**
   * SHA-256 (hex, first 32 characters) of the vision weights' values and the context: identifies
   * the state of the tower across processes.
   */
  fingerprint(): string {
    this.checkWeights();
    if (this.fingerprintValue === null) {
      const h = createHash('sha256');
      h.update(JSON.stringify(this.options.context));
      for (const [name, t] of this.options.tensors()) {
        h.update(`\0${name}[${t.shape.join(',')}]${t.dtype}\0`);
        const data = t.dataSync();
        h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }
      this.fingerprintValue = h.digest('hex').slice(0, 32);
    }
    return this.fingerprintValue;
  }

  private file(imageId: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(imageId)) throw new Error(`image id ${JSON.stringify(imageId)} cannot name a cache file`);
    return path.join(this.options.dir!, `${imageId}-${this.fingerprint()}.safetensors`);
  }

  /** The cached output of an image, or null (counted as a miss: the caller computes and `put`s it). */
  async get(imageId: string): Promise<VisionEntry | null> {
    this.checkWeights();
    const hit = this.memory.get(imageId);
    if (hit) {
      this.memory.delete(imageId);
      this.memory.set(imageId, hit);
      this.counters.hits++;
      return hit;
    }
    if (this.options.dir) {
      const file = this.file(imageId);
      const entry = await this.readFile(file);
      if (entry) {
        this.counters.diskHits++;
        this.remember(imageId, entry);
        return entry;
      }
    }
    this.counters.misses++;
    return null;
  }

  /** Stores a freshly computed output (memory, and disk when configured). */
  async put(imageId: string, entry: VisionEntry): Promise<void> {
    this.checkWeights();
    this.remember(imageId, entry);
    if (!this.options.dir) return;
    const file = this.file(imageId);
    try {
      await writeSafetensors(
        file,
        [
          { name: 'hidden', dtype: 'F32', shape: [entry.patches, entry.width], data: entry.hidden },
          { name: 'patch_valid', dtype: 'F32', shape: [entry.patches], data: Float32Array.from(entry.patchValid) },
        ],
        { format: 'userpref-vision-cache', image: imageId, fingerprint: this.fingerprint() },
      );
    } catch (e) {
      this.counters.diskErrors++;
      this.options.onWarn?.('vision cache: cannot write a cache file (continuing without it)', { file, error: (e as Error).message });
    }
  }

  private async readFile(file: string): Promise<VisionEntry | null> {
    try {
      await fs.access(file);
    } catch {
      return null;
    }
    let f: SafetensorsFile | null = null;
    try {
      f = await SafetensorsFile.open(file);
      const meta = f.metadata();
      if (meta.fingerprint !== this.fingerprint()) throw new Error(`fingerprint ${meta.fingerprint} in the file, ${this.fingerprint()} expected`);
      const shape = f.entry('hidden').shape;
      if (shape.length !== 2 || f.entry('patch_valid').shape[0] !== shape[0]) throw new Error(`unexpected shapes hidden [${shape}] / patch_valid [${f.entry('patch_valid').shape}]`);
      const hidden = await f.readFloat32('hidden');
      const valid = await f.readFloat32('patch_valid');
      return { hidden, patches: shape[0], width: shape[1], patchValid: Uint8Array.from(valid, (v) => (v ? 1 : 0)) };
    } catch (e) {
      // A damaged or foreign file: recompute (and overwrite it) rather than fail the run.
      this.counters.diskErrors++;
      this.options.onWarn?.('vision cache: ignoring an unreadable cache file', { file, error: (e as Error).message });
      return null;
    } finally {
      await f?.close();
    }
  }

  private remember(imageId: string, entry: VisionEntry): void {
    const size = entryBytes(entry);
    if (size > this.options.maxBytes) return;
    const old = this.memory.get(imageId);
    if (old) {
      this.memory.delete(imageId);
      this.bytes -= entryBytes(old);
    }
    this.memory.set(imageId, entry);
    this.bytes += size;
    while (this.bytes > this.options.maxBytes) {
      const [oldest, v] = this.memory.entries().next().value as [string, VisionEntry];
      this.memory.delete(oldest);
      this.bytes -= entryBytes(v);
      this.counters.evictions++;
    }
  }

  clearMemory(): void {
    this.memory.clear();
    this.bytes = 0;
  }
}
