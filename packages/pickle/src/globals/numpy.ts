/**
 * numpy reconstructors (numpy 1.x `numpy.core.*` and numpy 2.x `numpy._core.*` names): dtypes,
 * ndarrays from `_reconstruct` + BUILD state or from protocol-5 `_frombuffer`, and scalars. Raw
 * buffers are decoded once into C-ordered typed arrays; object arrays keep their Python items.
 */
import { PyGlobal, asInt, asIntList, asString, asTuple, asBytes, pyInt, typeName } from '../python';
import { allocLike, decodeElements, fortranToC, type ElementType, type NumericArray } from '../typed';
import type { Buildable, GlobalTable } from './types';

const NUMERIC: Record<string, ElementType> = {
  b1: 'bool',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
  f2: 'float16',
  f4: 'float32',
  f8: 'float64',
};

/** numpy.dtype, reduced to what decoding needs. */
export class NumpyDtype implements Buildable {
  /** numpy kind character: b i u f c O U S V M m */
  kind: string;
  itemsize: number;
  /** '<' little, '>' big, '|' not applicable, '=' native (little here) */
  byteorder = '=';
  /** datetime64 / timedelta64 unit, e.g. 'ns' */
  unit?: string;
  /** true for record dtypes (names/fields in the state): not decodable here */
  structured = false;

  constructor(descr: string) {
    const m = /^([<>|=]?)([a-zA-Z])(\d*)(?:\[(\w+)\])?$/.exec(descr);
    if (!m) throw new Error(`unsupported numpy dtype descriptor '${descr}'`);
    if (m[1]) this.byteorder = m[1];
    this.kind = m[2] === '?' ? 'b' : m[2];
    this.itemsize = m[3] ? Number(m[3]) : 0;
    if (m[4]) this.unit = m[4];
    if (this.kind === 'U' && m[3]) this.itemsize = Number(m[3]) * 4;
  }

  setState(state: unknown): void {
    const s = asTuple(state, 'numpy.dtype state', 8, 9);
    const order = s[1];
    if (typeof order === 'string') this.byteorder = order;
    if (s[3] !== null || s[4] !== null) this.structured = true;
    if (s[2] !== null) throw new Error('numpy sub-array dtypes are not supported');
    const elsize = asInt(s[5], 'numpy.dtype elsize');
    if (elsize > 0 && (this.kind === 'U' || this.kind === 'S' || this.kind === 'V')) this.itemsize = elsize;
    if (s.length === 9 && Array.isArray(s[8]) && s[8].length > 0) {
      const unit = s[8][0];
      this.unit = unit instanceof Uint8Array ? new TextDecoder().decode(unit) : String(unit);
    }
  }

  /** numpy's name for the dtype: float64, int64, bool, object, <U5, datetime64[ns], ... */
  get name(): string {
    const el = this.elementType;
    if (el) return el;
    if (this.kind === 'O') return 'object';
    if (this.kind === 'U') return `<U${this.itemsize / 4}`;
    if (this.kind === 'S') return `|S${this.itemsize}`;
    if (this.kind === 'M') return `datetime64[${this.unit ?? 'generic'}]`;
    if (this.kind === 'm') return `timedelta64[${this.unit ?? 'generic'}]`;
    return `${this.kind}${this.itemsize}`;
  }

  /** The typed-array element type, for plain numeric dtypes. */
  get elementType(): ElementType | undefined {
    if (this.structured) return undefined;
    if (this.kind === 'M' || this.kind === 'm') return 'int64';
    return NUMERIC[`${this.kind}${this.itemsize}`];
  }

  get bigEndian(): boolean {
    return this.byteorder === '>';
  }
}

/** A numpy.ndarray. `data` is always in C (row-major) order. */
export class NumpyArray implements Buildable {
  dtype: NumpyDtype = new NumpyDtype('f8');
  shape: number[] = [0];
  /** typed array for numeric dtypes (bool as 0/1 bytes, datetime64 as int64), Python items for
   *  object dtype, strings for U, Uint8Arrays for S */
  data: NumericArray | unknown[] = new Float64Array(0);

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata)) */
  setState(state: unknown): void {
    const s = asTuple(state, 'numpy.ndarray state', 4, 5);
    const [shape, dtype, fortran, raw] = s.length === 5 ? s.slice(1) : s;
    if (!(dtype instanceof NumpyDtype)) throw new Error(`numpy.ndarray state dtype is ${typeName(dtype)}`);
    this.dtype = dtype;
    this.shape = asIntList(shape, 'numpy.ndarray shape');
    if (dtype.kind === 'O') {
      if (!Array.isArray(raw)) throw new Error(`object ndarray state must hold a list, got ${typeName(raw)}`);
      if (raw.length !== this.size) throw new Error(`object ndarray holds ${raw.length} items for shape [${this.shape}]`);
      this.data = raw; // numpy pickles object items in logical (C) order whatever the layout
      return;
    }
    const bytes = typeof raw === 'string' ? latin1(raw) : asBytes(raw, 'numpy.ndarray data');
    this.data = decodeRaw(bytes, dtype, this.shape, fortran === true ? 'F' : 'C');
  }

  /** Item i (flat, C order) as a JS value: see `numpyItem`. */
  item(i: number): unknown {
    return numpyItem(this.data, this.dtype, i);
  }

  /** The whole array as (nested) JS arrays of JS values. */
  toJs(): unknown {
    const nest = (dim: number, start: number): unknown[] => {
      const n = this.shape[dim];
      const stride = this.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) out[i] = dim === this.shape.length - 1 ? this.item(start + i) : nest(dim + 1, start + i * stride);
      return out;
    };
    return this.shape.length === 0 ? this.item(0) : nest(0, 0);
  }
}

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Decode a raw buffer laid out in `order` into C-ordered data. */
function decodeRaw(raw: Uint8Array, dtype: NumpyDtype, shape: number[], order: 'C' | 'F'): NumericArray | unknown[] {
  const count = shape.reduce((a, b) => a * b, 1);
  if (dtype.structured) throw new Error('numpy record (structured) dtypes are not supported');
  if (raw.length !== count * dtype.itemsize) {
    throw new Error(`numpy ${dtype.name} array of shape [${shape}] needs ${count * dtype.itemsize} bytes, got ${raw.length}`);
  }
  const el = dtype.elementType;
  if (el) {
    const data = decodeElements(raw, el, dtype.bigEndian);
    return order === 'F' ? fortranToC(data, shape, allocLike(data)) : data;
  }
  let items: unknown[];
  if (dtype.kind === 'U') {
    items = [];
    const chars = dtype.itemsize / 4;
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < count; i++) {
      let s = '';
      for (let c = 0; c < chars; c++) {
        const cp = dv.getUint32((i * chars + c) * 4, !dtype.bigEndian);
        if (cp === 0) break;
        s += String.fromCodePoint(cp);
      }
      items.push(s);
    }
  } else if (dtype.kind === 'S') {
    items = [];
    for (let i = 0; i < count; i++) {
      const cell = raw.subarray(i * dtype.itemsize, (i + 1) * dtype.itemsize);
      let end = cell.length;
      while (end > 0 && cell[end - 1] === 0) end--;
      items.push(cell.slice(0, end));
    }
  } else {
    throw new Error(`numpy dtype ${dtype.name} is not supported`);
  }
  return order === 'F' ? fortranToC(items, shape, (n) => new Array<unknown>(n)) : items;
}

/** One element as JS: int64 -> number (BigInt beyond 2^53), bool -> boolean, float -> number. */
export function numpyItem(data: NumericArray | unknown[], dtype: NumpyDtype, i: number): unknown {
  const v = data[i];
  if (typeof v === 'bigint') return pyInt(v);
  if (dtype.kind === 'b') return v !== 0;
  return v;
}

function toDtype(v: unknown, what: string): NumpyDtype {
  if (v instanceof NumpyDtype) return v;
  throw new Error(`${what} must be a numpy.dtype, got ${typeName(v)}`);
}

const reconstruct = {
  kind: 'function' as const,
  call: ([subtype]: unknown[]) => {
    if (!(subtype instanceof PyGlobal) || subtype.path !== 'numpy.ndarray') {
      throw new Error(`numpy _reconstruct of ${typeName(subtype)} is not supported (only numpy.ndarray)`);
    }
    return new NumpyArray();
  },
};

const scalar = {
  kind: 'function' as const,
  call: ([dtypeArg, payload]: unknown[]) => {
    const dtype = toDtype(dtypeArg, 'numpy scalar dtype');
    if (dtype.kind === 'O') return payload;
    const bytes = typeof payload === 'string' ? latin1(payload) : asBytes(payload, 'numpy scalar data');
    const data = decodeRaw(bytes, dtype, [], 'C');
    return numpyItem(data, dtype, 0);
  },
};

const frombuffer = {
  kind: 'function' as const,
  call: ([buf, dtypeArg, shape, order]: unknown[]) => {
    const dtype = toDtype(dtypeArg, 'numpy _frombuffer dtype');
    const arr = new NumpyArray();
    arr.dtype = dtype;
    arr.shape = asIntList(shape, 'numpy _frombuffer shape');
    const o = asString(order, 'numpy _frombuffer order');
    arr.data = decodeRaw(asBytes(buf, 'numpy _frombuffer buffer'), dtype, arr.shape, o === 'F' ? 'F' : 'C');
    return arr;
  },
};

const dtype = {
  kind: 'class' as const,
  call: ([descr]: unknown[]) => new NumpyDtype(asString(descr, 'numpy.dtype descriptor')),
};

export const numpyGlobals: GlobalTable = {
  'numpy.core.multiarray._reconstruct': reconstruct,
  'numpy._core.multiarray._reconstruct': reconstruct,
  'numpy.core.multiarray.scalar': scalar,
  'numpy._core.multiarray.scalar': scalar,
  'numpy.core.numeric._frombuffer': frombuffer,
  'numpy._core.numeric._frombuffer': frombuffer,
  'numpy.dtype': dtype,
  /** Only ever an argument of _reconstruct. */
  'numpy.ndarray': { kind: 'class' },
};
