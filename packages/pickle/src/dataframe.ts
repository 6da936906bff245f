/**
 * readDataFrame: a pickled pandas DataFrame (pandas 1.x-3.x, e.g. the paper's bench_*.pkl release)
 * as columns of JS values. Numeric numpy blocks are decoded from their raw buffers; object cells
 * are the unpickled Python values (str -> string, bytes -> Uint8Array, list -> Array, int ->
 * number/BigInt, None -> null). The row index is only used for the length.
 */
import { PickleError } from './errors';
import { NumpyArray } from './globals/numpy';
import { PandasBlockManager, PandasIndex, arrayValues } from './globals/pandas';
import { PyObject, typeName } from './python';
import { PickleFile } from './source';
import { unpickle, unpickleFile, type FileUnpickleOptions } from './unpickler';

export interface DataFrame {
  /** column labels in frame order (non-string labels are turned into strings) */
  columns: string[];
  /** number of rows */
  length: number;
  /** the values of one column, one per row; the same array is returned on each call */
  column(name: string): unknown[];
}

const FRAME_CLASSES = new Set(['pandas.core.frame.DataFrame', 'pandas.DataFrame']);

function label(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v === null) return 'None';
  throw new PickleError(`column label of type ${typeName(v)} is not supported`);
}

/** The rows of block `values` as columns: a 2-D ndarray has one row per column it holds. */
function blockColumns(values: unknown, width: number, length: number, where: string): unknown[][] {
  if (values instanceof NumpyArray && values.shape.length === 2) {
    const [rows, cols] = values.shape;
    if (rows !== width || cols !== length) {
      throw new PickleError(`${where}: block of shape [${values.shape}] does not match ${width} column(s) x ${length} row(s)`);
    }
    const out: unknown[][] = [];
    for (let r = 0; r < rows; r++) {
      const col = new Array<unknown>(cols);
      for (let c = 0; c < cols; c++) {
        const v = values.item(r * cols + c);
        col[c] = v instanceof NumpyArray ? v.toJs() : v;
      }
      out.push(col);
    }
    return out;
  }
  if (width !== 1) throw new PickleError(`${where}: a 1-d block must hold exactly one column, it holds ${width}`);
  let col: unknown[];
  try {
    col = arrayValues(values, where);
  } catch (e) {
    throw e instanceof PickleError ? e : new PickleError((e as Error).message);
  }
  if (col.length !== length) throw new PickleError(`${where}: block has ${col.length} values for ${length} rows`);
  return [col];
}

/** How a DataFrame is read from a PickleFile: which `bytes` cells stay in the file (LazyBytes). */
export type DataFrameOptions = Pick<FileUnpickleOptions, 'lazyBytesFrom' | 'windowBytes'>;

/** Read a pickled pandas DataFrame from memory, or from an open file of any size (object cells of
 *  `bytes` then come out as LazyBytes from `options.lazyBytesFrom` bytes on). Throws
 *  PickleError("not a DataFrame pickle: ...") for other pickles. */
export function readDataFrame(input: Uint8Array | PickleFile, options: DataFrameOptions = {}): DataFrame {
  // Unknown classes are admitted as inert records so an unsupported block names its class below;
  // calling an unknown global is still refused by the unpickler.
  const root = input instanceof PickleFile ? unpickleFile(input, { ...options, inertClasses: true }) : unpickle(input, { inertClasses: true });
  if (!(root instanceof PyObject) || !FRAME_CLASSES.has(root.__class__)) {
    throw new PickleError(`not a DataFrame pickle: it holds ${typeName(root)}`);
  }
  const mgr = root.attr('_mgr') ?? root.attr('_data');
  if (!(mgr instanceof PandasBlockManager)) throw new PickleError(`not a DataFrame pickle: its data manager is ${typeName(mgr)}`);
  if (mgr.axes.length !== 2) throw new PickleError(`DataFrame manager has ${mgr.axes.length} axes, expected 2`);
  const [colAxis, rowAxis] = mgr.axes;
  if (!(colAxis instanceof PandasIndex) || !(rowAxis instanceof PandasIndex)) {
    throw new PickleError(`DataFrame axes are ${typeName(colAxis)} and ${typeName(rowAxis)}, not pandas indexes`);
  }
  const columns = colAxis.labels().map(label);
  const length = rowAxis.length;

  // column position -> [block, row within the block]
  const owner = new Array<[number, number] | undefined>(columns.length);
  mgr.blocks.forEach((b, bi) =>
    b.placement.forEach((pos, r) => {
      if (pos < 0 || pos >= columns.length) throw new PickleError(`block ${bi} places a column at ${pos}, the frame has ${columns.length}`);
      owner[pos] = [bi, r];
    }),
  );
  const missing = columns.filter((_, i) => owner[i] === undefined);
  if (missing.length) throw new PickleError(`no block holds column(s) ${missing.map((c) => `'${c}'`).join(', ')}`);

  const decoded = new Map<number, unknown[][]>();
  const cache = new Map<number, unknown[]>();
  const column = (name: string): unknown[] => {
    const at = columns.indexOf(name);
    if (at < 0) throw new PickleError(`no column '${name}' (columns: ${columns.join(', ')})`);
    if (columns.indexOf(name, at + 1) >= 0) throw new PickleError(`column name '${name}' is ambiguous: it appears more than once`);
    let col = cache.get(at);
    if (!col) {
      const [bi, r] = owner[at] as [number, number];
      let blockCols = decoded.get(bi);
      if (!blockCols) {
        const b = mgr.blocks[bi];
        blockCols = blockColumns(b.values, b.placement.length, length, `column '${name}' (block ${bi})`);
        decoded.set(bi, blockCols);
      }
      col = blockCols[r];
      cache.set(at, col);
    }
    return col;
  };
  return { columns, length, column };
}
