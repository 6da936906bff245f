/**
 * Run config files and `extends`. A config may start from another (`"extends": "<path>"`, relative
 * to the file that says it); objects merge, arrays and scalars of the child replace the parent's.
 *
 * Relative paths resolve against the file that declares them, as in tsconfig: a config in a temp
 * dir that extends apps/demo/config/demo.json still finds the demo's base next to demo.json. Which
 * values are paths is one fact, stated in the schemas: a property with `format: 'path'` (PATH_FORMAT
 * of @userpref/core) in RUN_CONFIG_SCHEMA / TRAIN_SCHEMA / EVAL_SCHEMA or in a plugin
 * contribution's options schema; plus a plugin `package` given as a path ('./x', '../x', '/x'),
 * which core already treats as a path. Values declared in an extended file are made absolute when
 * it is loaded; values of the file given on the command line stay as written and resolve against
 * its folder (the run's baseDir) as before.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { ConfigError, PATH_FORMAT, deepMerge, loadPluginPackage, type ContributionKind, type OptionsSchema } from '@userpref/core';
import { EVAL_SCHEMA, RUN_CONFIG_SCHEMA, TRAIN_SCHEMA } from './run-config';

type Json = Record<string, unknown>;

async function readJson(file: string): Promise<Json> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config ${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Loads a config file; `extends` (a path relative to it) is merged underneath, each extended file's
 * relative paths resolved against that file's folder. `chain` guards against cycles.
 */
export async function loadConfigFile(file: string): Promise<Json> {
  return load(path.resolve(file), [], false);
}

async function load(file: string, chain: string[], resolvePaths: boolean): Promise<Json> {
  if (chain.includes(file)) throw new ConfigError(`config ${file} extends itself: ${[...chain, file].join(' -> ')}`);
  const raw = await readJson(file);
  const { extends: parentRef, ...own } = raw;
  if (parentRef !== undefined && typeof parentRef !== 'string') throw new ConfigError(`config ${file}: 'extends' must be a path (a string)`);
  const base = typeof parentRef === 'string' ? await load(path.resolve(path.dirname(file), parentRef), [...chain, file], true) : undefined;
  // The merged view tells which plugin a selection in this file belongs to (its package may come from the parent).
  const merged = base ? deepMerge(base, own) : own;
  const mine = resolvePaths ? await resolveDeclaredPaths(own, merged, path.dirname(file), file) : own;
  return base ? deepMerge(base, mine) : mine;
}

const isPathSpec = (s: string) => s.startsWith('./') || s.startsWith('../') || path.isAbsolute(s);

/** `value` with every string the schema marks `format: 'path'` resolved against `dir` (recursing into objects and arrays). */
export function resolveSchemaPaths(schema: Record<string, unknown> | undefined, value: unknown, dir: string): unknown {
  if (!schema || value === null || value === undefined) return value;
  if (typeof value === 'string') return schema.format === PATH_FORMAT ? path.resolve(dir, value) : value;
  if (Array.isArray(value)) {
    const items = schema.items as Record<string, unknown> | undefined;
    return items && !Array.isArray(items) ? value.map((v) => resolveSchemaPaths(items, v, dir)) : value;
  }
  if (typeof value === 'object') {
    const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
    if (!props) return value;
    const out: Json = { ...(value as Json) };
    for (const [k, s] of Object.entries(props)) if (k in out) out[k] = resolveSchemaPaths(s, out[k], dir);
    return out;
  }
  return value;
}

/** Where each plugin selection sits in `plugins`, and the kind of contribution it picks. */
const SLOTS: Array<{ key: string; kind: ContributionKind; list: boolean }> = [
  { key: 'backbone', kind: 'backbone', list: false },
  { key: 'losses', kind: 'loss', list: true },
  { key: 'tokens', kind: 'tokens', list: false },
  { key: 'dataset', kind: 'dataset', list: false },
  { key: 'scorers', kind: 'scorer', list: true },
];

/** The options schema of the contribution a selection names (the package is loaded to read it). */
function optionsSchemaOf(sel: Json, kind: ContributionKind, dir: string, file: string): OptionsSchema {
  const pkg = sel.package;
  const name = sel.name;
  if (typeof pkg !== 'string' || typeof name !== 'string') {
    throw new ConfigError(`config ${file}: a ${kind} selection with options needs 'package' and 'name' to tell which of its options are paths`);
  }
  let plugin;
  try {
    plugin = loadPluginPackage(pkg, dir);
  } catch (e) {
    throw new ConfigError(`config ${file}: cannot load plugin '${pkg}' to read which of its ${kind} options are paths: ${(e as Error).message}`);
  }
  const c = plugin.contributions.find((x) => x.kind === kind && x.name === name);
  if (!c) throw new ConfigError(`config ${file}: plugin '${pkg}' has no ${kind} named '${name}' (it offers: ${plugin.contributions.filter((x) => x.kind === kind).map((x) => x.name).join(', ') || 'none'})`);
  return c.optionsSchema;
}

/**
 * The values that `own` (one config file's contents, without `extends`) declares, with its
 * relative paths resolved against `dir`. `merged` is the config as merged so far (parent + own).
 */
export async function resolveDeclaredPaths(own: Json, merged: Json, dir: string, file: string): Promise<Json> {
  const out = resolveSchemaPaths(RUN_CONFIG_SCHEMA, own, dir) as Json;
  if (out.train && typeof out.train === 'object') out.train = resolveSchemaPaths(TRAIN_SCHEMA, out.train, dir);
  if (out.eval && typeof out.eval === 'object') out.eval = resolveSchemaPaths(EVAL_SCHEMA, out.eval, dir);
  const plugins = out.plugins as Json | undefined;
  if (!plugins || typeof plugins !== 'object') return out;
  const mergedPlugins = (merged.plugins ?? {}) as Json;
  const resolved: Json = { ...plugins };
  for (const { key, kind, list } of SLOTS) {
    const v = plugins[key];
    if (v === undefined || v === null) continue;
    const one = (sel: unknown, mergedSel: unknown): unknown => {
      if (!sel || typeof sel !== 'object' || Array.isArray(sel)) return sel;
      const s: Json = { ...(sel as Json) };
      if (typeof s.package === 'string' && isPathSpec(s.package)) s.package = path.resolve(dir, s.package);
      const options = s.options;
      if (options && typeof options === 'object' && Object.keys(options).length > 0) {
        const m: Json = { ...((mergedSel ?? {}) as Json), ...(typeof s.package === 'string' ? { package: s.package } : {}) };
        s.options = resolveSchemaPaths(optionsSchemaOf(m, kind, dir, file), options, dir);
      }
      return s;
    };
    // Arrays replace the parent's whole, so a list's selections are all this file's own.
    resolved[key] = list && Array.isArray(v) ? v.map((sel) => one(sel, sel)) : one(v, mergedPlugins[key]);
  }
  out.plugins = resolved;
  return out;
}
