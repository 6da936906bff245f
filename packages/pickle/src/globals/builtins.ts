/**
 * Whitelisted Python builtins, codecs, copyreg and collections helpers: the plumbing that pickles of
 * protocol 0-5 use to rebuild sets, bytes, slices, ordered dicts and plain class instances.
 */
import { PyComplex, PyGlobal, PySlice, asInt, asString, bytesValue, markOrderedDict, typeName } from '../python';
import type { GlobalTable } from './types';

function iterable(v: unknown, what: string): unknown[] {
  if (Array.isArray(v)) return v;
  if (v instanceof Set) return [...v];
  if (v instanceof Map) return [...v.keys()];
  const b = bytesValue(v);
  if (b) return [...b];
  if (typeof v === 'string') return [...v];
  throw new Error(`${what}: cannot iterate ${typeName(v)}`);
}

function encodeText(s: string, encoding: string): Uint8Array {
  const enc = encoding.toLowerCase().replace(/_/g, '-');
  if (enc === 'latin1' || enc === 'latin-1' || enc === 'iso-8859-1' || enc === 'ascii') {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) throw new Error(`cannot encode code point ${c} as ${encoding}`);
      out[i] = c;
    }
    return out;
  }
  if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(s);
  throw new Error(`unsupported text encoding '${encoding}'`);
}

function bytesFromArgs(args: unknown[], what: string): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  const [src, encoding] = args;
  if (typeof src === 'string') return encodeText(src, encoding === undefined ? 'utf-8' : asString(encoding, `${what} encoding`));
  const b = bytesValue(src);
  if (b) return b.slice();
  if (typeof src === 'number') return new Uint8Array(src);
  return Uint8Array.from(iterable(src, what).map((x) => asInt(x, `${what} item`)));
}

function sliceArg(v: unknown, what: string): number | null {
  return v === null || v === undefined ? null : asInt(v, what);
}

function ordered(args: unknown[]): Map<unknown, unknown> {
  const m = new Map<unknown, unknown>();
  if (args.length === 0 || args[0] === null) return m;
  const src = args[0];
  if (src instanceof Map) {
    for (const [k, v] of src) m.set(k, v);
    return m;
  }
  for (const pair of iterable(src, 'dict()')) {
    if (!Array.isArray(pair) || pair.length !== 2) throw new Error(`dict() item must be a (key, value) pair, got ${typeName(pair)}`);
    m.set(pair[0], pair[1]);
  }
  return m;
}

const makeSet = { kind: 'class' as const, call: (a: unknown[]) => new Set(a.length ? iterable(a[0], 'set()') : []), newObject: () => new Set() };
const makeBytearray = { kind: 'class' as const, call: (a: unknown[]) => bytesFromArgs(a, 'bytearray()'), newObject: () => new Uint8Array(0) };
const makeBytes = { kind: 'class' as const, call: (a: unknown[]) => bytesFromArgs(a, 'bytes()'), newObject: () => new Uint8Array(0) };
const makeDict = { kind: 'class' as const, call: (a: unknown[]) => ordered(a), newObject: () => new Map() };
/** Like dict, but remembered as an OrderedDict: only an OrderedDict may take attributes from BUILD. */
const makeOrderedDict = {
  kind: 'class' as const,
  call: (a: unknown[]) => markOrderedDict(ordered(a)),
  newObject: () => markOrderedDict(new Map()),
};

export const builtinGlobals: GlobalTable = {
  'builtins.set': makeSet,
  'builtins.frozenset': makeSet,
  'builtins.bytearray': makeBytearray,
  'builtins.bytes': makeBytes,
  'builtins.list': { kind: 'class', call: (a) => (a.length ? iterable(a[0], 'list()').slice() : []), newObject: () => [] },
  'builtins.tuple': { kind: 'class', call: (a) => (a.length ? iterable(a[0], 'tuple()').slice() : []), newObject: () => [] },
  'builtins.dict': makeDict,
  'builtins.slice': {
    kind: 'class',
    call: (a) => {
      if (a.length === 1) return new PySlice(null, sliceArg(a[0], 'slice stop'), null);
      return new PySlice(sliceArg(a[0], 'slice start'), sliceArg(a[1], 'slice stop'), sliceArg(a[2], 'slice step'));
    },
  },
  'builtins.complex': {
    kind: 'class',
    call: (a) => new PyComplex(Number(a[0] ?? 0), Number(a[1] ?? 0)),
  },
  /** Only ever used as the `base` argument of copyreg._reconstructor. */
  'builtins.object': { kind: 'class' },
  '_codecs.encode': {
    kind: 'function',
    call: (a) => encodeText(asString(a[0], '_codecs.encode text'), a.length > 1 ? asString(a[1], '_codecs.encode encoding') : 'utf-8'),
  },
  'copyreg._reconstructor': {
    kind: 'function',
    call: ([cls, base, state], ctx) => {
      if (!(base instanceof PyGlobal) || base.path !== 'builtins.object') {
        throw new Error(`copyreg._reconstructor with base ${typeName(base)} is not supported (only builtins.object)`);
      }
      if (state !== null && state !== undefined) {
        throw new Error('copyreg._reconstructor with a base state is not supported');
      }
      return ctx.instantiate(cls, []);
    },
  },
  'copyreg.__newobj__': {
    kind: 'function',
    call: (a, ctx) => ctx.instantiate(a[0], a.slice(1)),
  },
  'copyreg.__newobj_ex__': {
    kind: 'function',
    call: ([cls, args, kwargs], ctx) => {
      if (!Array.isArray(args)) throw new Error(`copyreg.__newobj_ex__ args must be a tuple, got ${typeName(args)}`);
      return ctx.instantiate(cls, args, kwargs instanceof Map ? kwargs : undefined);
    },
  },
  'collections.OrderedDict': makeOrderedDict,
};

/** Python 2 module names that protocol 0-2 pickles (fix_imports) still write. */
export const MODULE_ALIASES: Record<string, string> = {
  __builtin__: 'builtins',
  copy_reg: 'copyreg',
};
