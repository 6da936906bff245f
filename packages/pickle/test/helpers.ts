/**
 * Test helpers: read fixtures and compare our JS values with the tagged JSON that
 * goldens/make_pickle_fixtures.py wrote from the real Python objects.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(__dirname, 'fixtures');

export function fixture(name: string): Uint8Array {
  const b = readFileSync(join(FIXTURES, name));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function expected<T = any>(name: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, name), 'utf8'));
}

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function sortSet(items: unknown[]): { $set: string[] } {
  return { $set: items.map((x) => JSON.stringify(x)).sort() };
}

/** Our unpickled value -> the canonical tagged form. */
export function canonActual(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $float: 'nan' };
    if (v === Infinity) return { $float: 'inf' };
    if (v === -Infinity) return { $float: '-inf' };
    return v;
  }
  if (typeof v === 'bigint') return { $int: v.toString() };
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Uint8Array) return { $bytes: hex(v) };
  if (Array.isArray(v)) return v.map(canonActual);
  if (v instanceof Set) return sortSet([...v].map(canonActual));
  if (v instanceof Map) {
    if ([...v.keys()].every((k) => typeof k === 'string')) {
      return Object.fromEntries([...v].map(([k, x]) => [k, canonActual(x)]));
    }
    return { $dict: [...v].map(([k, x]) => [canonActual(k), canonActual(x)]) };
  }
  throw new Error(`canonActual: unexpected ${Object.prototype.toString.call(v)}`);
}

/** Python's tagged JSON -> the canonical tagged form (tuples are arrays, bytearray is bytes). */
export function canonExpected(v: any): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(canonExpected);
  if ('$tuple' in v) return v.$tuple.map(canonExpected);
  if ('$bytearray' in v) return { $bytes: v.$bytearray };
  if ('$set' in v) return sortSet(v.$set.map(canonExpected));
  if ('$frozenset' in v) return sortSet(v.$frozenset.map(canonExpected));
  if ('$dict' in v) return { $dict: v.$dict.map(([k, x]: [any, any]) => [canonExpected(k), canonExpected(x)]) };
  if ('$bytes' in v || '$int' in v || '$float' in v) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, canonExpected(x)]));
}
