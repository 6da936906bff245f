/**
 * pandas reconstructors for DataFrame pickles of pandas 1.x (BlockManager given the "0.14.1" state
 * by BUILD), 2.x and 3.x (BlockManager(blocks, axes) with `_unpickle_block`), the Index family via
 * `_new_Index`, and the extension arrays pandas uses for strings and nullable numbers. The objects
 * built here are plain records; `readDataFrame` turns them into columns.
 */
import { PyGlobal, PyObject, PySlice, asInt, asTuple, getItem, typeName } from '../python';
import { ArrowArray } from './pyarrow';
import { NumpyArray } from './numpy';
import type { CallContext, GlobalDef, GlobalTable } from './types';

/** One block of a BlockManager: a 2-D ndarray (rows = columns of the frame) or a 1-D extension
 *  array, and the column positions it fills. */
export class PandasBlock {
  constructor(
    readonly values: unknown,
    readonly placement: number[],
  ) {}
}

export class PandasBlockManager {
  blocks: PandasBlock[] = [];
  axes: unknown[] = [];

  /** pandas <= 1.2 state: (axes, values, items, {"0.14.1": {axes, blocks: [{values, mgr_locs}]}}) */
  setState(state: unknown): void {
    const s = asTuple(state, 'BlockManager state');
    const extra = s.length >= 4 ? getItem(s[3], '0.14.1') : undefined;
    if (extra === undefined) throw new Error('BlockManager state predates pandas 0.14.1 and is not supported');
    const axes = getItem(extra, 'axes');
    const blocks = getItem(extra, 'blocks');
    this.axes = asTuple(axes, 'BlockManager axes');
    this.blocks = asTuple(blocks, 'BlockManager blocks').map((b, i) => {
      const values = getItem(b, 'values');
      if (values === undefined) throw new Error(`BlockManager block ${i} has no values`);
      return new PandasBlock(values, placementIndices(getItem(b, 'mgr_locs'), `block ${i} mgr_locs`));
    });
  }
}

/** An Index reduced to its length and (lazily decoded) labels. */
export class PandasIndex {
  constructor(
    readonly className: string,
    readonly length: number,
    /** the labels' array (ndarray or extension array); absent for RangeIndex */
    readonly data: unknown,
    readonly range?: { start: number; stop: number; step: number },
    readonly name: unknown = null,
  ) {}

  labels(): unknown[] {
    if (this.range) {
      const out: number[] = [];
      for (let i = 0; i < this.length; i++) out.push(this.range.start + i * this.range.step);
      return out;
    }
    return arrayValues(this.data, `${this.className} labels`);
  }
}

export class PandasPlacement {
  constructor(readonly indices: number[]) {}
}

export function placementIndices(p: unknown, what: string): number[] {
  if (p instanceof PandasPlacement) return p.indices;
  if (p instanceof PySlice) {
    const start = p.start ?? 0;
    const step = p.step ?? 1;
    if (p.stop === null || step === 0 || start < 0 || p.stop < 0) throw new Error(`${what}: unsupported slice placement`);
    const out: number[] = [];
    if (step > 0) for (let i = start; i < p.stop; i += step) out.push(i);
    else for (let i = start; i > p.stop; i += step) out.push(i);
    return out;
  }
  if (p instanceof NumpyArray) return Array.from(p.data as ArrayLike<number | bigint>, (v) => Number(v));
  if (Array.isArray(p)) return p.map((v, i) => asInt(v, `${what}[${i}]`));
  if (typeof p === 'number') return [p];
  throw new Error(`${what} must be a slice or an int array, got ${typeName(p)}`);
}

function arrayLength(v: unknown, what: string): number {
  if (v instanceof NumpyArray) return v.shape[0] ?? 1;
  return arrayValues(v, what).length;
}

function cellToJs(v: unknown): unknown {
  return v instanceof NumpyArray ? v.toJs() : v;
}

/** The 1-D values of an ndarray or a pandas extension array as JS values (missing -> null). */
export function arrayValues(v: unknown, what: string): unknown[] {
  if (v instanceof NumpyArray) {
    if (v.shape.length !== 1) throw new Error(`${what}: expected a 1-d array, got shape [${v.shape}]`);
    const out = new Array<unknown>(v.size);
    for (let i = 0; i < out.length; i++) out[i] = cellToJs(v.item(i));
    return out;
  }
  if (v instanceof ArrowArray) return v.values;
  if (Array.isArray(v)) return v.map(cellToJs);
  if (v instanceof PyObject) {
    const cls = v.__class__.split('.').pop() as string;
    if (cls === 'ArrowStringArray' || cls === 'ArrowExtensionArray' || cls === 'ArrowStringArrayNumpySemantics') {
      const pa = v.attr('_pa_array') ?? v.attr('_data');
      if (pa instanceof ArrowArray) return pa.values;
      throw new Error(`${what}: ${v.__class__} holds ${typeName(pa)}, not an Arrow array`);
    }
    if (cls === 'StringArray' || cls === 'NumpyExtensionArray' || cls === 'PandasArray') {
      const nd = Array.isArray(v.state) ? v.state.find((x) => x instanceof NumpyArray) : v.attr('_ndarray');
      if (!(nd instanceof NumpyArray)) throw new Error(`${what}: ${v.__class__} without its ndarray`);
      const vals = arrayValues(nd, what);
      // StringArray marks missing values with NA or NaN
      return cls === 'StringArray' ? vals.map((x) => (typeof x === 'number' && Number.isNaN(x) ? null : x)) : vals;
    }
    if (cls === 'IntegerArray' || cls === 'FloatingArray' || cls === 'BooleanArray') {
      const data = arrayValues(v.attr('_data'), `${what} data`);
      const mask = arrayValues(v.attr('_mask'), `${what} mask`);
      if (mask.length !== data.length) throw new Error(`${what}: mask and data lengths differ`);
      return data.map((x, i) => (mask[i] ? null : x));
    }
    throw new Error(`${what}: unsupported block/array type ${v.__class__}`);
  }
  throw new Error(`${what}: unsupported block/array type ${typeName(v)}`);
}

function newIndex([cls, d]: unknown[]): PandasIndex {
  if (!(cls instanceof PyGlobal)) throw new Error(`_new_Index class is ${typeName(cls)}`);
  if (!(d instanceof Map)) throw new Error(`_new_Index state is ${typeName(d)}, not a dict`);
  const name = d.get('name') ?? null;
  if (cls.name === 'RangeIndex') {
    const start = asInt(d.get('start') ?? d.get('_start') ?? 0, 'RangeIndex start');
    const stop = asInt(d.get('stop') ?? d.get('_stop'), 'RangeIndex stop');
    const step = asInt(d.get('step') ?? d.get('_step') ?? 1, 'RangeIndex step');
    if (step === 0) throw new Error('RangeIndex step is 0');
    const length = Math.max(0, Math.ceil((stop - start) / step));
    return new PandasIndex(cls.path, length, undefined, { start, stop, step }, name);
  }
  const data = d.get('data');
  if (data === undefined) throw new Error(`${cls.path} pickle has no 'data'`);
  return new PandasIndex(cls.path, arrayLength(data, cls.path), data, undefined, name);
}

/** A class kept as a PyObject record: instantiation (NEWOBJ) or a call both just record args. */
const record: GlobalDef = {
  kind: 'class',
  call: (args, _ctx, self) => new PyObject(self.path, args),
  newObject: (args, _ctx, self, kwargs) => new PyObject(self.path, args, kwargs),
};
/** A class that is only ever passed as an argument (index classes given to _new_Index). */
const marker: GlobalDef = { kind: 'class' };

const unpickleBlock: GlobalDef = {
  kind: 'function',
  call: ([values, placement]) => new PandasBlock(values, placementIndices(placement, 'block placement')),
};

function blockManager(args: unknown[]): PandasBlockManager {
  const m = new PandasBlockManager();
  const [blocks, axes] = args;
  const list = blocks instanceof PandasBlock ? [blocks] : asTuple(blocks, 'BlockManager blocks');
  m.blocks = list.map((b, i) => {
    if (!(b instanceof PandasBlock)) throw new Error(`BlockManager block ${i} is ${typeName(b)}`);
    return b;
  });
  m.axes = axes instanceof PandasIndex ? [axes] : asTuple(axes, 'BlockManager axes');
  return m;
}

const manager: GlobalDef = {
  kind: 'class',
  call: (args) => blockManager(args),
  newObject: () => new PandasBlockManager(),
};

const missing: GlobalDef = { kind: 'constant', constant: null };

const table: GlobalTable = {
  'pandas._libs.internals._unpickle_block': unpickleBlock,
  'pandas.core.internals.blocks.new_block': unpickleBlock,
  'pandas._libs.internals.BlockPlacement': {
    kind: 'class',
    call: ([p]) => new PandasPlacement(placementIndices(p, 'BlockPlacement')),
  },
  'pandas.core.internals.managers.BlockManager': manager,
  'pandas.core.internals.managers.SingleBlockManager': manager,
  'pandas.core.indexes.base._new_Index': { kind: 'function', call: (a) => newIndex(a) },
  'pandas._libs.arrays.__pyx_unpickle_NDArrayBacked': {
    kind: 'function',
    call: ([cls, , state], ctx: CallContext) => {
      const obj = ctx.instantiate(cls, []);
      if (state !== null && state !== undefined && obj instanceof PyObject) obj.setState(state);
      return obj;
    },
  },
  'pandas.NA': missing,
  'pandas._libs.missing.NA': missing,
  'pandas.NaT': missing,
  'pandas._libs.tslibs.nattype.NaT': missing,
  'pandas._libs.tslibs.nattype.__nat_unpickle': { kind: 'function', call: () => null },
};

for (const m of ['pandas.core.frame', 'pandas']) table[`${m}.DataFrame`] = record;
for (const m of ['pandas.core.series', 'pandas']) table[`${m}.Series`] = record;
for (const c of ['Index', 'RangeIndex', 'Int64Index', 'UInt64Index', 'Float64Index', 'NumericIndex']) {
  table[`pandas.${c}`] = marker;
}
table['pandas.core.indexes.base.Index'] = marker;
table['pandas.core.indexes.range.RangeIndex'] = marker;
for (const c of ['Int64Index', 'UInt64Index', 'Float64Index', 'NumericIndex']) table[`pandas.core.indexes.numeric.${c}`] = marker;

const arrays: Record<string, string[]> = {
  ArrowStringArray: ['pandas.core.arrays.string_arrow'],
  ArrowStringArrayNumpySemantics: ['pandas.core.arrays.string_arrow'],
  ArrowExtensionArray: ['pandas.core.arrays.arrow.array'],
  StringArray: ['pandas.core.arrays.string_'],
  NumpyExtensionArray: ['pandas.core.arrays.numpy_'],
  PandasArray: ['pandas.core.arrays.numpy_'],
  IntegerArray: ['pandas.core.arrays.integer'],
  FloatingArray: ['pandas.core.arrays.floating'],
  BooleanArray: ['pandas.core.arrays.boolean'],
};
for (const [c, mods] of Object.entries(arrays)) {
  for (const m of ['pandas.arrays', ...mods]) table[`${m}.${c}`] = record;
}
const dtypes: Record<string, string> = {
  StringDtype: 'pandas.core.arrays.string_',
  BooleanDtype: 'pandas.core.arrays.boolean',
  Float32Dtype: 'pandas.core.arrays.floating',
  Float64Dtype: 'pandas.core.arrays.floating',
  ArrowDtype: 'pandas.core.dtypes.dtypes',
};
for (const bits of [8, 16, 32, 64]) {
  dtypes[`Int${bits}Dtype`] = 'pandas.core.arrays.integer';
  dtypes[`UInt${bits}Dtype`] = 'pandas.core.arrays.integer';
}
for (const [c, m] of Object.entries(dtypes)) {
  table[`pandas.${c}`] = record;
  table[`${m}.${c}`] = record;
}

export const pandasGlobals: GlobalTable = table;
