/**
 * Builds a runner's command line (commander) from flag specs, loads the run config (the app's
 * embedded default or --config), applies flags and --set overrides, validates, and returns it.
 */
import { Command, Option } from 'commander';
import * as path from 'path';
import { ConfigError, applySets, getPath, setPath, validateOptions } from '@userpref/core';
import { resolveTrainedPath } from '@userpref/training';
import { loadConfigFile } from './config-file';
import { COMMON_FLAGS, parseFlagValue, type FlagSpec } from './flags';
import { EVAL_SCHEMA, RUN_CONFIG_SCHEMA, TRAIN_SCHEMA, type RunConfig } from './run-config';

export interface RunnerSpec {
  name: string;
  description: string;
  flags: FlagSpec[];
  /** The embedded default config file of the app. */
  defaultConfig: string;
}

export interface ParsedRun {
  config: RunConfig;
  resume: boolean | string;
  configFile: string;
}

export { loadConfigFile } from './config-file';

export async function parseRun(spec: RunnerSpec, argv: string[], cwd = process.cwd()): Promise<ParsedRun> {
  const flags = [...COMMON_FLAGS, ...spec.flags.filter((f) => !COMMON_FLAGS.some((c) => c.name === f.name))];
  // First pass: find --config so --help can show the values it gives.
  const configIdx = argv.indexOf('--config');
  const configFile = configIdx >= 0 && argv[configIdx + 1] ? path.resolve(cwd, argv[configIdx + 1]) : spec.defaultConfig;
  const fileConfig = await loadConfigFile(configFile).catch((e) => {
    if (argv.includes('--help') || argv.includes('-h')) return {} as Record<string, unknown>;
    throw e;
  });
  const withDefaults = (cfg: Record<string, unknown>) => {
    const v = validateOptions('run config', RUN_CONFIG_SCHEMA, cfg);
    return v;
  };

  const program = new Command(spec.name)
    .description(spec.description)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined }) // errors are rethrown and printed once by runMain
    .option('--config <file>', 'Run config JSON (default: the embedded one).', configFile)
    .option('--set <path=value...>', 'Override any config value, e.g. --set plugins.losses.1.weight=0.5', [])
    .option('--resume [checkpoint]', 'Resume from the newest checkpoint of <out>/<exp_name> (or the given one).')
    .option('--verbose', 'Print the stack trace of an error as well (expected errors are one line without it).');
  for (const f of flags) {
    const current = getPath(fileConfig, f.path) ?? getPath({ train: defaultsOf(TRAIN_SCHEMA), eval: defaultsOf(EVAL_SCHEMA), ...defaultsOf(RUN_CONFIG_SCHEMA) }, f.path);
    const shown = f.type === 'bool01' && typeof current === 'boolean' ? (current ? 1 : 0) : current;
    // The default shown is the loaded config's value; the option itself has none, so that only
    // flags given on the command line override the config.
    program.addOption(new Option(`--${f.name} <value>`, shown === undefined ? f.description : `${f.description} (default: ${JSON.stringify(shown)})`));
  }
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version') process.exit(0);
    throw new ConfigError((e as Error).message);
  }
  const opts = program.opts<Record<string, unknown>>();
  const config = structuredClone(fileConfig);
  for (const f of flags) {
    const key = f.name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const raw = (opts[key] ?? opts[f.name]) as string | undefined;
    if (raw === undefined) continue;
    const value = parseFlagValue(f, raw, cwd);
    setPath(config, f.path, f.trained ? await resolveTrainedPath(value as string, f.trained) : value);
  }
  applySets(config, (opts.set as string[]) ?? []);
  const validated = withDefaults(config) as unknown as RunConfig;
  if (validated.train) validated.train = validateOptions('run config train', TRAIN_SCHEMA, validated.train) as unknown as RunConfig['train'];
  if (validated.eval) validated.eval = validateOptions('run config eval', EVAL_SCHEMA, validated.eval) as unknown as RunConfig['eval'];
  validated.baseDir = path.dirname(configFile);
  validated.out = path.resolve(validated.baseDir, validated.out);
  const resume = opts.resume === undefined ? false : opts.resume === true ? true : path.resolve(cwd, String(opts.resume));
  return { config: validated, resume, configFile };
}

function defaultsOf(schema: { properties: Record<string, { default?: unknown }> }): Record<string, unknown> {
  return Object.fromEntries(Object.entries(schema.properties).filter(([, s]) => s.default !== undefined).map(([k, s]) => [k, s.default]));
}
