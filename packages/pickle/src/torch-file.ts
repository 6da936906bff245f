/**
 * torch.save files: the zip format (<name>/data.pkl + <name>/data/<key> storages, torch >= 1.6)
 * and the legacy format (magic/protocol/sys-info pickles, the object pickle, the storage key list,
 * then each storage as int64 element count + raw bytes). Storages come in through persistent ids;
 * modules pickled whole (torch.save(module), like the paper's prompt_pool.pt) are read in
 * inert-class mode, and `findTensor` / `torchStateDict` pull tensors out of them.
 */
import { unzipSync } from 'fflate';
import { PickleError } from './errors';
import { TorchStorage, TorchStorageType, TorchTensor } from './globals/torch';
import { PyGlobal, PyObject, asInt, asTuple, typeName } from './python';
import { ELEMENT_SIZE, decodeElements } from './typed';
import { unpickleAt } from './unpickler';

export interface TorchLoadOptions {
  /** admit unknown classes (pickled nn.Module subclasses) as inert records; default true */
  inertClasses?: boolean;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function isZip(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;
}

function storageType(v: unknown): TorchStorageType {
  if (v instanceof TorchStorageType) return v;
  if (v instanceof PyGlobal) throw new Error(`storage type ${v.path} is not supported`);
  throw new Error(`storage type is ${typeName(v)}`);
}

/** Load a torch.save file. Tensors become TorchTensor; modules become inert PyObject records. */
export function loadTorchFile(bytes: Uint8Array, options: TorchLoadOptions = {}): unknown {
  const inertClasses = options.inertClasses ?? true;
  return isZip(bytes) ? loadZip(bytes, inertClasses) : loadLegacy(bytes, inertClasses);
}

function loadZip(bytes: Uint8Array, inertClasses: boolean): unknown {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new PickleError(`torch file is not a readable zip archive: ${(e as Error).message}`);
  }
  const pkls = Object.keys(files).filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) throw new PickleError(`torch zip must hold exactly one <name>/data.pkl, found ${pkls.length}`);
  const prefix = pkls[0].slice(0, -'data.pkl'.length);
  const order = files[`${prefix}byteorder`];
  const byteorder = order ? new TextDecoder().decode(order).trim() : 'little';
  if (byteorder !== 'little' && byteorder !== 'big') throw new PickleError(`torch file byteorder '${byteorder}' is not understood`);
  const storages = new Map<string, TorchStorage>();

  const persistentLoad = (pid: unknown): TorchStorage => {
    const [kind, typeArg, keyArg, location, numelArg] = asTuple(pid, 'torch persistent id', 5, 5);
    if (kind !== 'storage') throw new Error(`persistent id of kind ${String(kind)} is not supported`);
    const type = storageType(typeArg);
    const key = String(keyArg);
    const known = storages.get(key);
    if (known) {
      if (known.dtype !== type.dtype) throw new Error(`storage '${key}' is used as both ${known.dtype} and ${type.dtype}`);
      return known;
    }
    const raw = files[`${prefix}data/${key}`];
    if (!raw) throw new Error(`storage '${key}' is missing from the archive (${prefix}data/${key})`);
    const numel = asInt(numelArg, 'storage numel');
    if (raw.length !== numel * ELEMENT_SIZE[type.dtype]) {
      throw new Error(`storage '${key}' has ${raw.length} bytes, expected ${numel} x ${type.dtype}`);
    }
    const s = new TorchStorage(key, type.dtype, numel, String(location));
    s.load(decodeElements(raw, type.dtype, byteorder === 'big'));
    storages.set(key, s);
    return s;
  };
  return unpickleAt(files[pkls[0]], 0, { persistentLoad, inertClasses }).value;
}

function loadLegacy(bytes: Uint8Array, inertClasses: boolean): unknown {
  let magic: unknown;
  let at = 0;
  try {
    ({ value: magic, end: at } = unpickleAt(bytes, 0));
  } catch {
    magic = undefined;
  }
  if (magic !== LEGACY_MAGIC) throw new PickleError('not a torch file: neither a zip archive nor a legacy torch.save pickle');
  const proto = unpickleAt(bytes, at);
  if (proto.value !== 1001) throw new PickleError(`legacy torch file protocol ${String(proto.value)} is not supported (expected 1001)`);
  const sys = unpickleAt(bytes, proto.end);
  const little = sys.value instanceof Map ? sys.value.get('little_endian') !== false : true;

  const roots = new Map<string, TorchStorage>();
  const views: Array<{ view: TorchStorage; root: string; offset: number }> = [];
  const persistentLoad = (pid: unknown): unknown => {
    // ('module', cls, source_file, source): legacy files note each module class with its source
    // code; the class itself stands in (it is only ever instantiated, as an inert record).
    if (Array.isArray(pid) && pid[0] === 'module' && pid.length === 4) return pid[1];
    const [kind, typeArg, rootKey, location, numelArg, viewMeta] = asTuple(pid, 'torch persistent id', 6, 6);
    if (kind !== 'storage') throw new Error(`persistent id of kind ${String(kind)} is not supported`);
    const type = storageType(typeArg);
    const key = String(rootKey);
    let root = roots.get(key);
    if (!root) {
      root = new TorchStorage(key, type.dtype, asInt(numelArg, 'storage numel'), String(location));
      roots.set(key, root);
    } else if (root.dtype !== type.dtype) {
      throw new Error(`storage '${key}' is used as both ${root.dtype} and ${type.dtype}`);
    }
    if (viewMeta === null || viewMeta === undefined) return root;
    const [viewKey, offset, size] = asTuple(viewMeta, 'storage view metadata', 3, 3);
    const view = new TorchStorage(String(viewKey), type.dtype, asInt(size, 'view size'), String(location));
    views.push({ view, root: key, offset: asInt(offset, 'view offset') });
    return view;
  };
  const main = unpickleAt(bytes, sys.end, { persistentLoad, inertClasses });
  const keys = unpickleAt(bytes, main.end);
  let pos = keys.end;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const k of asTuple(keys.value, 'legacy storage key list')) {
    const key = String(k);
    const s = roots.get(key);
    if (!s) throw new PickleError(`legacy torch file stores '${key}', which the pickle never uses`);
    if (pos + 8 > bytes.length) throw new PickleError(`unexpected end of torch file at byte ${bytes.length}: storage '${key}' header`);
    const numel = Number(dv.getBigInt64(pos, little));
    pos += 8;
    const n = numel * ELEMENT_SIZE[s.dtype];
    if (numel !== s.numel) throw new PickleError(`storage '${key}' holds ${numel} elements, the pickle says ${s.numel}`);
    if (pos + n > bytes.length) throw new PickleError(`unexpected end of torch file at byte ${bytes.length}: storage '${key}' needs ${n} bytes`);
    s.load(decodeElements(bytes.subarray(pos, pos + n), s.dtype, !little));
    pos += n;
  }
  const unloaded = [...roots.values()].filter((s) => !s.data).map((s) => s.key);
  if (unloaded.length) throw new PickleError(`legacy torch file lacks storage(s) ${unloaded.join(', ')}`);
  for (const { view, root, offset } of views) {
    const data = roots.get(root)!.data!;
    if (offset + view.numel > data.length) throw new PickleError(`storage view '${view.key}' exceeds storage '${root}'`);
    view.load(data.slice(offset, offset + view.numel));
  }
  return main.value;
}

function lookup(v: unknown, key: string): { found: boolean; value?: unknown } {
  if (v instanceof PyObject) {
    const s = v.state;
    const own = v.attr(key);
    if (own !== undefined) return { found: true, value: own };
    // nn.Module convenience: `prompt` also finds `_parameters.prompt`
    for (const slot of ['_parameters', '_buffers', '_modules']) {
      const m = v.attr(slot);
      if (m instanceof Map && m.has(key)) return { found: true, value: m.get(key) };
    }
    return s instanceof Map ? { found: false } : lookup(s, key);
  }
  if (v instanceof Map) return v.has(key) ? { found: true, value: v.get(key) } : { found: false };
  if (Array.isArray(v)) {
    const i = Number(key);
    return Number.isInteger(i) && i >= 0 && i < v.length ? { found: true, value: v[i] } : { found: false };
  }
  if (v !== null && typeof v === 'object' && key in v) return { found: true, value: (v as Record<string, unknown>)[key] };
  return { found: false };
}

function keysOf(v: unknown): string[] {
  if (v instanceof PyObject) return v.state instanceof Map ? [...v.state.keys()].map(String) : keysOf(v.state);
  if (v instanceof Map) return [...v.keys()].map(String);
  if (Array.isArray(v)) return v.map((_, i) => String(i));
  return [];
}

/**
 * Walk `path` through modules (their state, with `_parameters`/`_buffers`/`_modules` searched too),
 * dicts and lists to a tensor, e.g. findTensor(pool, ['_parameters', 'prompt']) or (pool, ['prompt']).
 */
export function findTensor(obj: unknown, path: string[]): TorchTensor {
  let cur = obj;
  for (let i = 0; i < path.length; i++) {
    const r = lookup(cur, path[i]);
    if (!r.found) {
      const where = path.slice(0, i).join('.') || '(root)';
      throw new PickleError(`no '${path[i]}' in ${where} (${typeName(cur)}; keys: ${keysOf(cur).join(', ') || 'none'})`);
    }
    cur = r.value;
  }
  if (!(cur instanceof TorchTensor)) throw new PickleError(`${path.join('.')} is ${typeName(cur)}, not a tensor`);
  return cur;
}

/**
 * Flatten modules, dicts and lists into state_dict-style names ("sub.weight", "list.0"). Modules
 * contribute their parameters, persistent buffers and submodules, as nn.Module.state_dict does.
 */
export function torchStateDict(obj: unknown): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  const seen = new Set<unknown>();
  const join = (prefix: string, k: string) => (prefix ? `${prefix}.${k}` : k);
  const visit = (v: unknown, prefix: string): void => {
    if (v instanceof TorchTensor) {
      out.set(prefix, v);
      return;
    }
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof PyObject) {
      const params = v.attr('_parameters');
      const modules = v.attr('_modules');
      if (params instanceof Map || modules instanceof Map) {
        const skip = v.attr('_non_persistent_buffers_set');
        const nonPersistent = skip instanceof Set ? skip : new Set();
        if (params instanceof Map) for (const [k, t] of params) if (t !== null) visit(t, join(prefix, String(k)));
        const buffers = v.attr('_buffers');
        if (buffers instanceof Map) for (const [k, t] of buffers) if (t !== null && !nonPersistent.has(k)) visit(t, join(prefix, String(k)));
        if (modules instanceof Map) for (const [k, m] of modules) visit(m, join(prefix, String(k)));
        return;
      }
      visit(v.state, prefix);
      return;
    }
    if (v instanceof Map) for (const [k, x] of v) visit(x, join(prefix, String(k)));
    else if (Array.isArray(v)) v.forEach((x, i) => visit(x, join(prefix, String(i))));
  };
  visit(obj, '');
  return out;
}
