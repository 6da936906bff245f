/** Command-line overrides of a JSON run config: `a.b.c=value` paths, values parsed as JSON when they parse. */
import { ConfigError } from '../plugin/validate';

export function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/** Sets `value` at dotted `path` in a copy-free way (mutates `target`), creating objects as needed. */
export function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  if (keys.some((k) => !k)) throw new ConfigError(`bad override path '${dotted}'`);
  let node: Record<string, unknown> = target;
  keys.slice(0, -1).forEach((k, i) => {
    const next = Array.isArray(node) ? (node as unknown[])[Number(k)] : node[k];
    // A missing container is an array when the next key is an index (eval.models.0.tokens).
    if (next === undefined || next === null) node[k] = /^\d+$/.test(keys[i + 1]) ? [] : {};
    else if (typeof next !== 'object') throw new ConfigError(`override '${dotted}': '${k}' is not an object`);
    node = (Array.isArray(node) ? (node as unknown[])[Number(k)] : node[k]) as Record<string, unknown>;
  });
  const last = keys[keys.length - 1];
  if (Array.isArray(node)) (node as unknown[])[Number(last)] = value;
  else node[last] = value;
}

export function getPath(target: unknown, dotted: string): unknown {
  let node = target as Record<string, unknown> | undefined;
  for (const k of dotted.split('.')) {
    if (node === undefined || node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[k] as Record<string, unknown> | undefined;
  }
  return node;
}

/** Applies `--set path=value` strings in order. */
export function applySets(config: Record<string, unknown>, sets: readonly string[]): void {
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects path=value, got '${s}'`);
    setPath(config, s.slice(0, eq), parseValue(s.slice(eq + 1)));
  }
}

export function deepMerge<T extends Record<string, unknown>>(base: T, over: Record<string, unknown>): T {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b) ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out as T;
}
