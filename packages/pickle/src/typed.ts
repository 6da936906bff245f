/**
 * Raw little/big-endian element bytes -> typed arrays, and strided gathers. Shared by numpy arrays
 * and torch storages so both honour byte order, alignment and memory layout the same way.
 */
import { widen16 } from './half';

export type NumericArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

/** Element types both readers share. float16/bfloat16 decode to Float32Array. */
export type ElementType =
  | 'float64'
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'int64'
  | 'int32'
  | 'int16'
  | 'int8'
  | 'uint64'
  | 'uint32'
  | 'uint16'
  | 'uint8'
  | 'bool';

export const ELEMENT_SIZE: Record<ElementType, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint64: 8,
  uint32: 4,
  uint16: 2,
  uint8: 1,
  bool: 1,
};

/** Decode `raw` (exactly count * itemsize bytes) into a fresh, aligned typed array. */
export function decodeElements(raw: Uint8Array, type: ElementType, bigEndian = false): NumericArray {
  const size = ELEMENT_SIZE[type];
  if (raw.length % size !== 0) throw new Error(`${raw.length} bytes is not a whole number of ${type} elements`);
  const bytes = raw.slice(); // copy: aligned at offset 0 and independent of the pickle buffer
  if (bigEndian && size > 1) {
    for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  }
  const buf = bytes.buffer;
  const n = bytes.length / size;
  switch (type) {
    case 'float64':
      return new Float64Array(buf, 0, n);
    case 'float32':
      return new Float32Array(buf, 0, n);
    case 'float16':
    case 'bfloat16':
      return widen16(bytes, type);
    case 'int64':
      return new BigInt64Array(buf, 0, n);
    case 'int32':
      return new Int32Array(buf, 0, n);
    case 'int16':
      return new Int16Array(buf, 0, n);
    case 'int8':
      return new Int8Array(buf, 0, n);
    case 'uint64':
      return new BigUint64Array(buf, 0, n);
    case 'uint32':
      return new Uint32Array(buf, 0, n);
    case 'uint16':
      return new Uint16Array(buf, 0, n);
    case 'uint8':
    case 'bool':
      return bytes;
  }
}

type Indexable = { length: number };
type Slots = { [i: number]: unknown };

/**
 * Gather a strided view (`shape`, `strides` and `offset` in elements) of `src` into a new
 * C-contiguous array made by `alloc`.
 */
export function gatherStrided<A extends Indexable>(
  srcArr: Indexable,
  shape: number[],
  strides: number[],
  offset: number,
  alloc: (n: number) => A,
): A {
  const n = shape.reduce((a, b) => a * b, 1);
  const result = alloc(n);
  const out = result as unknown as Slots;
  const src = srcArr as unknown as Slots;
  if (n === 0) return result;
  const nd = shape.length;
  if (nd === 0) {
    out[0] = src[offset];
    return result;
  }
  const idx = new Array<number>(nd).fill(0);
  let at = offset;
  const last = nd - 1;
  const lastStride = strides[last];
  const lastSize = shape[last];
  for (let o = 0; o < n; ) {
    let p = at;
    for (let j = 0; j < lastSize; j++, p += lastStride) out[o++] = src[p];
    // carry into the outer dimensions
    let d = last - 1;
    while (d >= 0) {
      idx[d]++;
      at += strides[d];
      if (idx[d] < shape[d]) break;
      at -= strides[d] * shape[d];
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return result;
}

/** Element strides of a contiguous array of `shape` in C ('C') or Fortran ('F') order. */
export function contiguousStrides(shape: number[], order: 'C' | 'F'): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  if (order === 'C') {
    for (let i = shape.length - 1; i >= 0; i--) {
      s[i] = acc;
      acc *= shape[i];
    }
  } else {
    for (let i = 0; i < shape.length; i++) {
      s[i] = acc;
      acc *= shape[i];
    }
  }
  return s;
}

/** Reorder data stored in Fortran order into C order (no-op for 0/1-d). */
export function fortranToC<A extends Indexable>(src: A, shape: number[], alloc: (n: number) => A): A {
  if (shape.length < 2) return src;
  return gatherStrided(src, shape, contiguousStrides(shape, 'F'), 0, alloc);
}

/** A same-typed empty array for `gatherStrided`'s alloc. */
export function allocLike(a: NumericArray): (n: number) => NumericArray {
  const Ctor = a.constructor as new (n: number) => NumericArray;
  return (n) => new Ctor(n);
}
