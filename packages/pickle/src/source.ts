/**
 * Pickles read from a file instead of from memory. Node reads at most 2 GiB in one call and the
 * paper's training release is several GB per file, so `PickleFile` reads a window at a time and
 * large `bytes` payloads (the images) stay in the file as `LazyBytes` until someone asks for them.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { PickleError } from './errors';

/** Longest single read: below Node's 2 GiB per-call limit. */
const MAX_READ = 1 << 30;

/** An open pickle file read by offset (synchronously: the unpickler is synchronous). */
export class PickleFile {
  private fd: number | null;
  readonly size: number;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
    this.size = fstatSync(fd).size;
  }

  static open(path: string): PickleFile {
    return new PickleFile(path, openSync(path, 'r'));
  }

  get closed(): boolean {
    return this.fd === null;
  }

  /** `length` bytes from `offset`, in a new array. */
  readAt(offset: number, length: number): Uint8Array {
    if (this.fd === null) throw new PickleError(`${this.path}: read at byte ${offset} after the file was closed`);
    if (offset + length > this.size) {
      throw new PickleError(`${this.path}: read of bytes ${offset}..${offset + length} past the end of the file (${this.size} bytes)`);
    }
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const n = readSync(this.fd, out, done, Math.min(MAX_READ, length - done), offset + done);
      if (n === 0) throw new PickleError(`${this.path}: the file ended at byte ${offset + done}, expected ${this.size} bytes (was it truncated while being read?)`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** A Python `bytes` value left in its file: `length` bytes at `offset`. `read()` fetches them. */
export class LazyBytes {
  constructor(
    readonly file: PickleFile,
    readonly offset: number,
    readonly length: number,
  ) {}

  read(): Uint8Array {
    return this.file.readAt(this.offset, this.length);
  }
}
