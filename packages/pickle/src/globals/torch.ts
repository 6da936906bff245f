/**
 * torch reconstructors: storage-type markers (what BINPERSID storage ids name), tensor and
 * parameter rebuilders, and a few value types (dtypes, Size, device). Tensors are materialised
 * into C-contiguous typed arrays honouring storage offset and strides; float16/bfloat16 storages
 * are widened to Float32Array.
 */
import { PyGlobal, asInt, asIntList, asString, typeName } from '../python';
import { allocLike, contiguousStrides, gatherStrided, type ElementType, type NumericArray } from '../typed';
import type { GlobalDef, GlobalTable } from './types';

export type TorchDtype = ElementType;

/** `torch.FloatStorage` and friends: only used to say what a persisted storage holds. */
export class TorchStorageType {
  constructor(
    readonly name: string,
    readonly dtype: TorchDtype,
  ) {}
}

/** `torch.float32` and friends, when a pickle stores a dtype as a value. */
export class TorchDtypeRef {
  constructor(readonly name: string) {}
}

/** A storage named by a persistent id; `data` is filled once its bytes are read. */
export class TorchStorage {
  data: NumericArray | undefined;
  /** tensors waiting for `data` (legacy files store the bytes after the pickle) */
  readonly pending: TorchTensor[] = [];
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    readonly numel: number,
    readonly location: string,
  ) {}

  load(data: NumericArray): void {
    if (data.length !== this.numel) throw new Error(`storage '${this.key}' holds ${data.length} ${this.dtype} elements, expected ${this.numel}`);
    this.data = data;
    for (const t of this.pending.splice(0)) t.materialize();
  }
}

/** A tensor read from a torch pickle: C-contiguous `data` of `shape`. */
export class TorchTensor {
  /** C-contiguous values; float16/bfloat16 are widened to float32, bool is 0/1 bytes */
  data: NumericArray = new Float32Array(0);
  requiresGrad = false;
  /** rebuilt through torch._utils._rebuild_parameter (an nn.Parameter) */
  isParameter = false;
  /** Python-side state attached to the tensor/parameter (rare), kept rather than dropped */
  pythonState?: unknown;

  constructor(
    readonly dtype: TorchDtype,
    readonly shape: number[],
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly stride: number[],
  ) {}

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Copy this tensor's view out of its storage. */
  materialize(): void {
    const src = this.storage.data;
    if (!src) throw new Error(`storage '${this.storage.key}' is not loaded`);
    const n = this.numel;
    if (n === 0) {
      this.data = allocLike(src)(0);
      return;
    }
    let last = this.storageOffset;
    for (let d = 0; d < this.shape.length; d++) {
      if (this.stride[d] < 0) throw new Error(`negative stride in tensor on storage '${this.storage.key}'`);
      last += (this.shape[d] - 1) * this.stride[d];
    }
    if (this.storageOffset < 0 || last >= src.length) {
      throw new Error(
        `tensor view (offset ${this.storageOffset}, shape [${this.shape}], stride [${this.stride}]) exceeds storage '${this.storage.key}' of ${src.length} elements`,
      );
    }
    const c = contiguousStrides(this.shape, 'C');
    const contiguous = this.shape.every((s, d) => s === 1 || this.stride[d] === c[d]);
    this.data = contiguous
      ? src.slice(this.storageOffset, this.storageOffset + n)
      : gatherStrided(src, this.shape, this.stride, this.storageOffset, allocLike(src));
  }
}

const STORAGE_TYPES: Record<string, TorchDtype> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const DTYPES: Record<string, string> = {
  float32: 'float32',
  float: 'float32',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  float64: 'float64',
  double: 'float64',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

function rebuildTensor(args: unknown[]): TorchTensor {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof TorchStorage)) throw new Error(`tensor storage is ${typeName(storage)}, not a persisted torch storage`);
  const shape = asIntList(size, 'tensor size');
  const strides = asIntList(stride, 'tensor stride');
  if (strides.length !== shape.length) throw new Error(`tensor size [${shape}] and stride [${strides}] differ in rank`);
  const t = new TorchTensor(storage.dtype, shape, storage, asInt(offset, 'tensor storage_offset'), strides);
  if (args.length > 4) t.requiresGrad = args[4] === true;
  if (storage.data) t.materialize();
  else storage.pending.push(t);
  return t;
}

function asTensor(v: unknown, what: string): TorchTensor {
  if (v instanceof TorchTensor) return v;
  throw new Error(`${what} is ${typeName(v)}, not a tensor`);
}

function nonEmpty(v: unknown): boolean {
  return v !== null && v !== undefined && !(v instanceof Map && v.size === 0) && !(Array.isArray(v) && v.length === 0);
}

const rebuildParameter = (args: unknown[]): TorchTensor => {
  const t = asTensor(args[0], 'parameter data');
  t.isParameter = true;
  t.requiresGrad = args[1] === true;
  if (args.length > 3 && nonEmpty(args[3])) t.pythonState = args[3];
  return t;
};

const marker: GlobalDef = { kind: 'class' };

const table: GlobalTable = {
  'torch._utils._rebuild_tensor_v2': { kind: 'function', call: (a) => rebuildTensor(a) },
  'torch._utils._rebuild_tensor': { kind: 'function', call: (a) => rebuildTensor(a.slice(0, 4)) },
  'torch._utils._rebuild_parameter': { kind: 'function', call: rebuildParameter },
  'torch._utils._rebuild_parameter_with_state': { kind: 'function', call: rebuildParameter },
  'torch._tensor._rebuild_from_type_v2': {
    kind: 'function',
    call: ([fn, newType, args, state], ctx) => {
      if (!(newType instanceof PyGlobal) || (newType.path !== 'torch.Tensor' && newType.path !== 'torch.nn.parameter.Parameter')) {
        throw new Error(`tensor subclass ${typeName(newType)} is not supported`);
      }
      const t = asTensor(ctx.call(fn, Array.isArray(args) ? args : []), '_rebuild_from_type_v2 result');
      if (newType.path === 'torch.nn.parameter.Parameter') t.isParameter = true;
      if (nonEmpty(state)) t.pythonState = state;
      return t;
    },
  },
  'torch.Tensor': marker,
  'torch.nn.parameter.Parameter': marker,
  'torch.Size': { kind: 'class', call: ([dims]) => asIntList(dims ?? [], 'torch.Size') },
  'torch.device': {
    kind: 'class',
    call: ([type, index]) => (index === undefined || index === null ? asString(type, 'torch.device') : `${asString(type, 'torch.device')}:${asInt(index, 'device index')}`),
  },
};
for (const [name, dtype] of Object.entries(STORAGE_TYPES)) {
  table[`torch.${name}`] = { kind: 'constant', constant: new TorchStorageType(name, dtype) };
}
table['torch.storage.UntypedStorage'] = table['torch.UntypedStorage'];
for (const [name, dtype] of Object.entries(DTYPES)) table[`torch.${name}`] = { kind: 'constant', constant: new TorchDtypeRef(dtype) };

export const torchGlobals: GlobalTable = table;
