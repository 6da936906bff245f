/**
 * How Python values look after unpickling. Plain data maps to plain JS (str -> string,
 * bytes/bytearray -> Uint8Array, int -> number or BigInt beyond 2^53, float -> number,
 * bool -> boolean, None -> null, list/tuple -> Array, dict -> Map, set/frozenset -> Set).
 * Everything that Python would have built by calling code is one of the records below: the
 * unpickler never calls anything that is not a pure TypeScript data transform.
 */
import type { GlobalDef } from './globals/types';
import { LazyBytes } from './source';

/** A `module.name` reference pushed by GLOBAL / STACK_GLOBAL. `def` is absent for a global that is
 *  not whitelisted (only possible in inert-class mode); such a global can be instantiated as an
 *  inert record but never called. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly def: GlobalDef | undefined,
  ) {}
  get path(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An instance of a Python class, kept as data: the class path, the arguments given to
 * `cls.__new__` and the state given by BUILD. Used both for whitelisted record-like classes
 * (pandas.DataFrame, pandas' extension arrays, ...) and, in inert-class mode, for unknown classes
 * such as `prompt_pool.PromptPool`.
 */
export class PyObject {
  state: unknown = undefined;
  constructor(
    readonly __class__: string,
    readonly args: unknown[] = [],
    readonly kwargs?: Map<unknown, unknown>,
    /** true when the class is not whitelisted (inert-class mode) */
    readonly inert = false,
  ) {}
  /** Python BUILD: a dict state updates the instance dict; anything else replaces the state. */
  setState(state: unknown): void {
    if (this.state instanceof Map && state instanceof Map) {
      for (const [k, v] of state) this.state.set(k, v);
    } else {
      this.state = state;
    }
  }
  /** Attribute from a dict state (or from the dict half of a (dict, slots) state). */
  attr(name: string): unknown {
    const s = this.state;
    if (s instanceof Map) return s.get(name);
    if (Array.isArray(s) && s.length === 2) {
      for (const part of s) if (part instanceof Map && part.has(name)) return part.get(name);
    }
    return undefined;
  }
}

/** builtins.slice */
export class PySlice {
  constructor(
    readonly start: number | null,
    readonly stop: number | null,
    readonly step: number | null,
  ) {}
}

/** builtins.complex */
export class PyComplex {
  constructor(
    readonly re: number,
    readonly im: number,
  ) {}
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Python int -> number when exact, else BigInt. */
export function pyInt(v: bigint): number | bigint {
  return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v;
}

/** A short Python-flavoured type name for error messages. */
export function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return 'str';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'boolean') return 'bool';
  if (v instanceof Uint8Array || v instanceof LazyBytes) return 'bytes';
  if (Array.isArray(v)) return 'list/tuple';
  if (v instanceof Map) return 'dict';
  if (v instanceof Set) return 'set';
  if (v instanceof PyObject) return v.__class__;
  if (v instanceof PyGlobal) return `global ${v.path}`;
  const ctor = (v as object).constructor;
  return ctor && ctor.name ? ctor.name : typeof v;
}

export function asInt(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  }
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new Error(`${what} must be an int, got ${typeName(v)}`);
}

export function asIntList(v: unknown, what: string): number[] {
  if (!Array.isArray(v)) throw new Error(`${what} must be a tuple of ints, got ${typeName(v)}`);
  return v.map((x, i) => asInt(x, `${what}[${i}]`));
}

export function asString(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what} must be a str, got ${typeName(v)}`);
  return v;
}

/** `bytes` as an array: LazyBytes (a payload left in its file) are read here. Others: undefined. */
export function bytesValue(v: unknown): Uint8Array | undefined {
  if (v instanceof Uint8Array) return v;
  if (v instanceof LazyBytes) return v.read();
  return undefined;
}

export function asBytes(v: unknown, what: string): Uint8Array {
  const b = bytesValue(v);
  if (!b) throw new Error(`${what} must be bytes, got ${typeName(v)}`);
  return b;
}

export function asTuple(v: unknown, what: string, min = 0, max = Infinity): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${what} must be a tuple, got ${typeName(v)}`);
  if (v.length < min || v.length > max) {
    throw new Error(`${what} must have ${min === max ? min : `${min}..${max}`} items, got ${v.length}`);
  }
  return v;
}

/** d[key] for a Python dict (Map) or a plain JS object. */
export function getItem(d: unknown, key: string): unknown {
  if (d instanceof Map) return d.get(key);
  if (d !== null && typeof d === 'object' && !Array.isArray(d)) return (d as Record<string, unknown>)[key];
  return undefined;
}

// ------------------------------------------------------------------ OrderedDict attributes

/** Maps that stand for a `collections.OrderedDict` (dicts and OrderedDicts are both plain Maps). */
const ORDERED_DICTS = new WeakSet<Map<unknown, unknown>>();
/** Instance attributes that BUILD gave an OrderedDict, kept beside the Map so its items stay its items. */
const DICT_ATTRIBUTES = new WeakMap<Map<unknown, unknown>, Map<string, unknown>>();

export function markOrderedDict<M extends Map<unknown, unknown>>(m: M): M {
  ORDERED_DICTS.add(m);
  return m;
}

export function isOrderedDict(v: unknown): v is Map<unknown, unknown> {
  return v instanceof Map && ORDERED_DICTS.has(v);
}

/**
 * The instance attributes a pickle set on an OrderedDict (Python: `od.__dict__`), e.g. the
 * `_metadata` of a torch `state_dict()` (module prefix -> {version}); undefined when none were set.
 * They are not items: the Map holds only the dict's items.
 */
export function pyAttributes(v: unknown): ReadonlyMap<string, unknown> | undefined {
  return v instanceof Map ? DICT_ATTRIBUTES.get(v) : undefined;
}

/**
 * BUILD on an OrderedDict, as pickle's load_build does for an object without __setstate__: the state
 * is a dict of attributes (or a (dict, slots) pair whose slots are None: OrderedDict has no slots),
 * and its entries become instance attributes. Only data is stored; anything else is refused.
 */
export function setOrderedDictAttributes(m: Map<unknown, unknown>, state: unknown): void {
  let dictState = state;
  if (Array.isArray(state)) {
    if (state.length !== 2) throw new Error(`OrderedDict state must be a dict or a (dict, None) pair, got a sequence of ${state.length}`);
    if (state[1] !== null) throw new Error(`OrderedDict has no slots, but the state sets slots (${typeName(state[1])})`);
    dictState = state[0];
  }
  if (dictState === null) return;
  if (!(dictState instanceof Map)) throw new Error(`OrderedDict state must be a dict of attributes, got ${typeName(dictState)}`);
  if (dictState.size === 0) return;
  let attrs = DICT_ATTRIBUTES.get(m);
  if (!attrs) DICT_ATTRIBUTES.set(m, (attrs = new Map()));
  for (const [k, v] of dictState) {
    if (typeof k !== 'string') throw new Error(`OrderedDict attribute names must be str, got ${typeName(k)}`);
    attrs.set(k, v);
  }
}
