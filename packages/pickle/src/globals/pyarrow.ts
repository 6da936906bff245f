/**
 * The pyarrow pieces pandas >= 2 pickles for Arrow-backed columns (pandas 3's default `str` dtype):
 * type aliases, buffers and `_restore_array`. Only flat string/binary/primitive arrays are decoded.
 */
import { asInt, asString, asTuple, bytesValue, pyInt, typeName } from '../python';
import type { GlobalTable } from './types';

export class ArrowType {
  constructor(readonly alias: string) {}
}

/** A decoded Arrow array: one JS value per slot, null where the validity bitmap says missing. */
export class ArrowArray {
  constructor(
    readonly type: string,
    readonly values: unknown[],
  ) {}
  get length(): number {
    return this.values.length;
  }
}

const PRIMITIVE: Record<string, { size: number; read: (dv: DataView, at: number) => unknown }> = {
  int8: { size: 1, read: (dv, at) => dv.getInt8(at) },
  int16: { size: 2, read: (dv, at) => dv.getInt16(at, true) },
  int32: { size: 4, read: (dv, at) => dv.getInt32(at, true) },
  int64: { size: 8, read: (dv, at) => pyInt(dv.getBigInt64(at, true)) },
  uint8: { size: 1, read: (dv, at) => dv.getUint8(at) },
  uint16: { size: 2, read: (dv, at) => dv.getUint16(at, true) },
  uint32: { size: 4, read: (dv, at) => dv.getUint32(at, true) },
  uint64: { size: 8, read: (dv, at) => pyInt(dv.getBigUint64(at, true)) },
  float: { size: 4, read: (dv, at) => dv.getFloat32(at, true) },
  float32: { size: 4, read: (dv, at) => dv.getFloat32(at, true) },
  double: { size: 8, read: (dv, at) => dv.getFloat64(at, true) },
  float64: { size: 8, read: (dv, at) => dv.getFloat64(at, true) },
};

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function buffer(v: unknown, what: string): Uint8Array | null {
  if (v === null) return null;
  const b = bytesValue(v);
  if (b) return b;
  throw new Error(`${what} must be a pyarrow buffer, got ${typeName(v)}`);
}

function bit(bitmap: Uint8Array, i: number): boolean {
  return (bitmap[i >> 3] >> (i & 7)) & 1 ? true : false;
}

/** pyarrow.lib._restore_array((type, length, null_count, offset, buffers, children, dictionary)) */
function restoreArray(data: unknown): ArrowArray {
  const [typeArg, lengthArg, , offsetArg, buffersArg, children, dictionary] = asTuple(data, 'pyarrow array state', 7, 7);
  if (!(typeArg instanceof ArrowType)) throw new Error(`pyarrow array type is ${typeName(typeArg)}`);
  const type = typeArg.alias;
  const length = asInt(lengthArg, 'pyarrow array length');
  const offset = asInt(offsetArg, 'pyarrow array offset');
  if (Array.isArray(children) && children.length > 0) throw new Error(`nested pyarrow type ${type} is not supported`);
  if (dictionary !== null) throw new Error(`dictionary-encoded pyarrow arrays are not supported`);
  const buffers = asTuple(buffersArg, 'pyarrow buffers').map((b, i) => buffer(b, `pyarrow buffer ${i}`));
  const validity = buffers[0];
  const values = new Array<unknown>(length);
  const valid = (i: number) => validity === null || bit(validity, offset + i);

  if (type === 'string' || type === 'utf8' || type === 'large_string' || type === 'large_utf8' || type === 'binary' || type === 'large_binary') {
    const large = type.startsWith('large_');
    const text = !type.endsWith('binary');
    const offsets = buffers[1];
    const bytes = buffers[2] ?? new Uint8Array(0);
    if (!offsets) throw new Error(`pyarrow ${type} array without an offsets buffer`);
    const dv = view(offsets);
    const at = (i: number) => (large ? Number(dv.getBigInt64(i * 8, true)) : dv.getInt32(i * 4, true));
    const decoder = new TextDecoder('utf-8');
    for (let i = 0; i < length; i++) {
      if (!valid(i)) {
        values[i] = null;
        continue;
      }
      const cell = bytes.subarray(at(offset + i), at(offset + i + 1));
      values[i] = text ? decoder.decode(cell) : cell.slice();
    }
  } else if (type === 'bool') {
    const bits = buffers[1];
    if (!bits) throw new Error('pyarrow bool array without a data buffer');
    for (let i = 0; i < length; i++) values[i] = valid(i) ? bit(bits, offset + i) : null;
  } else if (PRIMITIVE[type]) {
    const { size, read } = PRIMITIVE[type];
    const bytes = buffers[1];
    if (!bytes) throw new Error(`pyarrow ${type} array without a data buffer`);
    const dv = view(bytes);
    for (let i = 0; i < length; i++) values[i] = valid(i) ? read(dv, (offset + i) * size) : null;
  } else {
    throw new Error(`pyarrow type ${type} is not supported`);
  }
  return new ArrowArray(type, values);
}

export const pyarrowGlobals: GlobalTable = {
  'pyarrow.lib.type_for_alias': { kind: 'function', call: ([name]) => new ArrowType(asString(name, 'pyarrow type alias')) },
  'pyarrow.lib.py_buffer': {
    kind: 'function',
    call: ([b]) => {
      const bytes = bytesValue(b);
      if (!bytes) throw new Error(`pyarrow.lib.py_buffer of ${typeName(b)}`);
      return bytes;
    },
  },
  'pyarrow.lib._restore_array': { kind: 'function', call: ([data]) => restoreArray(data) },
  'pyarrow.lib.chunked_array': {
    kind: 'function',
    call: ([chunks, type]) => {
      const parts = asTuple(chunks, 'pyarrow chunked_array chunks');
      const values: unknown[] = [];
      for (const c of parts) {
        if (!(c instanceof ArrowArray)) throw new Error(`pyarrow chunk is ${typeName(c)}`);
        for (const v of c.values) values.push(v);
      }
      const alias = type instanceof ArrowType ? type.alias : parts[0] instanceof ArrowArray ? parts[0].type : 'null';
      return new ArrowArray(alias, values);
    },
  },
};
