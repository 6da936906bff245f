/**
 * Builds the inversify container of a run from its `plugins` config: loads each named package,
 * checks that it is a userpref plugin, validates each options block against its schema, binds
 * the options, loads the package's ContainerModule, and resolves the chosen implementations.
 * Core never imports a plugin: packages are found by name at run time, so a plugin written
 * outside this repository works by naming it in the config.
 */
import { Container } from 'inversify';
import * as path from 'path';
import type { Backbone } from '../contracts/backbone';
import type { PreferenceDataset } from '../contracts/dataset';
import { Logger } from '../contracts/logger';
import type { PreferenceLoss, WeightedLoss } from '../contracts/loss';
import type { PreferenceTokens } from '../contracts/tokens';
import type { ZeroShotScorer } from '../contracts/scorer';
import { ContractOf, PluginOptions, optionsName, type Contribution, type ContributionKind, type UserprefPlugin } from './manifest';
import { ConfigError, validateOptions } from './validate';

export interface PluginSelection {
  /** npm package name or a path to the package directory. */
  package: string;
  /** Contribution name within the package. */
  name: string;
  options?: Record<string, unknown>;
}

export interface LossSelection extends PluginSelection {
  /** Weight of this term in the summed objective. Default 1. */
  weight?: number;
}

export interface PluginsConfig {
  backbone?: PluginSelection;
  losses?: LossSelection[];
  tokens?: PluginSelection | null;
  dataset?: PluginSelection;
  /** Non-personalised scorers (the zero-shot rows of Table 1), each under its contribution name. */
  scorers?: PluginSelection[];
}

/** Run-wide facts every plugin may inject. */
export const RunContext = Symbol.for('userpref.RunContext');
export interface RunContext {
  readonly seed: number;
  /** Directory relative paths in options are resolved against (the config file's folder). */
  readonly baseDir: string;
}

export interface Assembly {
  readonly container: Container;
  readonly backbone?: Backbone;
  readonly losses: WeightedLoss[];
  readonly tokens?: PreferenceTokens;
  readonly dataset?: PreferenceDataset;
  /** Scorers by contribution name (`plugins.scorers[].name`), in config order; not yet initialised. */
  readonly scorers: ReadonlyMap<string, ZeroShotScorer>;
  /** Options after validation and defaults, per `kind:name`. */
  readonly options: Record<string, Record<string, unknown>>;
}

export interface AssembleOptions {
  logger: Logger;
  seed: number;
  /** Where relative package paths and names are resolved from (default: cwd). */
  baseDir?: string;
}

function isPlugin(x: unknown): x is UserprefPlugin {
  const p = x as UserprefPlugin;
  return !!p && typeof p.packageName === 'string' && Array.isArray(p.contributions) && !!p.containerModule;
}

/** Loads a plugin package by name (from baseDir, then from this workspace) or by path. */
export function loadPluginPackage(spec: string, baseDir: string): UserprefPlugin {
  const looksLikePath = spec.startsWith('.') || path.isAbsolute(spec);
  const target = looksLikePath ? path.resolve(baseDir, spec) : spec;
  let resolved: string;
  try {
    resolved = require.resolve(target, { paths: [baseDir, process.cwd(), __dirname] });
  } catch {
    throw new ConfigError(`plugin package '${spec}' was not found (looked from ${baseDir}); install it or give a path to its folder`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(resolved) as Record<string, unknown>;
  const plugin = mod.userprefPlugin ?? (mod.default as Record<string, unknown> | undefined)?.userprefPlugin;
  if (!isPlugin(plugin)) {
    throw new ConfigError(`package '${spec}' is not a userpref plugin: it must export 'userprefPlugin' with packageName, contributions and containerModule`);
  }
  return plugin;
}

export async function assemble(config: PluginsConfig, opts: AssembleOptions): Promise<Assembly> {
  const baseDir = opts.baseDir ?? process.cwd();
  const container = new Container();
  container.bind(Logger).toConstantValue(opts.logger);
  container.bind<RunContext>(RunContext).toConstantValue({ seed: opts.seed, baseDir });

  const packages = new Map<string, UserprefPlugin>();
  const options: Record<string, Record<string, unknown>> = {};
  const chosen: Array<{ kind: ContributionKind; sel: PluginSelection }> = [];
  if (config.backbone) chosen.push({ kind: 'backbone', sel: config.backbone });
  for (const l of config.losses ?? []) chosen.push({ kind: 'loss', sel: l });
  if (config.tokens) chosen.push({ kind: 'tokens', sel: config.tokens });
  if (config.dataset) chosen.push({ kind: 'dataset', sel: config.dataset });
  if (config.scorers !== undefined && !Array.isArray(config.scorers)) throw new ConfigError('plugins.scorers must be a list of { package, name, options }');
  for (const s of config.scorers ?? []) chosen.push({ kind: 'scorer', sel: s });

  const seen = new Set<string>();
  for (const { kind, sel } of chosen) {
    if (!sel || typeof sel.package !== 'string' || typeof sel.name !== 'string') {
      throw new ConfigError(`plugins.${kind}: each selection needs 'package' and 'name' strings`);
    }
    const key = optionsName(kind, sel.name);
    if (seen.has(key)) throw new ConfigError(`${kind} '${sel.name}' is selected twice`);
    seen.add(key);
    let plugin = packages.get(sel.package);
    if (!plugin) {
      plugin = loadPluginPackage(sel.package, baseDir);
      packages.set(sel.package, plugin);
    }
    const contribution: Contribution | undefined = plugin.contributions.find((c) => c.kind === kind && c.name === sel.name);
    if (!contribution) {
      const offered = plugin.contributions.filter((c) => c.kind === kind).map((c) => c.name);
      throw new ConfigError(`plugin '${plugin.packageName}' has no ${kind} named '${sel.name}' (it offers: ${offered.join(', ') || 'none'})`);
    }
    const validated = validateOptions(`plugin '${plugin.packageName}' ${kind} '${sel.name}'`, contribution.optionsSchema, sel.options);
    options[key] = validated;
    container.bind(PluginOptions).toConstantValue(validated).whenNamed(key);
  }
  for (const plugin of packages.values()) await container.load(plugin.containerModule);

  const get = <T>(kind: ContributionKind, name: string): T => {
    try {
      return container.get<T>(ContractOf[kind] as symbol, { name });
    } catch (err) {
      throw new ConfigError(`${kind} '${name}' could not be created: ${(err as Error).message}`);
    }
  };
  const losses = (config.losses ?? []).map((l) => {
    const weight = l.weight ?? 1;
    if (typeof weight !== 'number' || !Number.isFinite(weight)) throw new ConfigError(`loss '${l.name}': weight must be a finite number`);
    return { loss: get<PreferenceLoss>('loss', l.name), weight };
  });
  return {
    container,
    backbone: config.backbone ? get<Backbone>('backbone', config.backbone.name) : undefined,
    losses,
    tokens: config.tokens ? get<PreferenceTokens>('tokens', config.tokens.name) : undefined,
    dataset: config.dataset ? get<PreferenceDataset>('dataset', config.dataset.name) : undefined,
    scorers: new Map((config.scorers ?? []).map((s) => [s.name, get<ZeroShotScorer>('scorer', s.name)])),
    options,
  };
}
