/**
 * Similar-user mining runner (the paper's Figure 3): a stage-2 eval-style config, the stage-1
 * adapter (--lora_path) and the trained preference tokens (--tokens_path); writes
 * <out>/<exp_name>/neighbours.json, users.csv and similarity-heatmap.png.
 *
 * The mining flags (--users, --orders, --k, --target, ...) are not run-config paths, so they are
 * taken out of argv here and validated against MINING_SCHEMA; everything else goes to parseRun.
 */
import * as path from 'path';
import { ConfigError, describeOptions, validateOptions, type SplitName } from '@userpref/core';
import { EVAL_FLAGS, parseRun, requireParts, runMain, setupRun } from '@userpref/cli';
import { clustersFromTruth } from '@userpref/dataset-pickapic';
import { MINING_SCHEMA, runMining, type MiningOptions } from '@userpref/mining';

type Kind = 'int' | 'string' | 'list' | 'path';
const MINE_FLAGS: Array<{ flag: string; key: keyof MiningOptions | 'truth'; kind: Kind }> = [
  { flag: 'split', key: 'split', kind: 'string' },
  { flag: 'users', key: 'users', kind: 'int' },
  { flag: 'orders', key: 'orders', kind: 'int' },
  { flag: 'k', key: 'k', kind: 'int' },
  { flag: 'target', key: 'target', kind: 'string' },
  { flag: 'layers', key: 'layers', kind: 'list' },
  { flag: 'heads', key: 'heads', kind: 'list' },
  { flag: 'vector', key: 'vector', kind: 'string' },
  { flag: 'similarity', key: 'similarity', kind: 'string' },
  { flag: 'batch', key: 'batchSize', kind: 'int' },
  { flag: 'layers_per_pass', key: 'layersPerPass', kind: 'int' },
  { flag: 'truth', key: 'truth', kind: 'path' },
];
const RUN_FLAGS = EVAL_FLAGS.filter((f) => ['lora_path', 'tokens_path'].includes(f.name));

function parseValue(flag: string, kind: Kind, raw: string): unknown {
  if (kind === 'int') {
    const v = Number(raw);
    if (!Number.isInteger(v)) throw new ConfigError(`--${flag} expects an integer, got '${raw}'`);
    return v;
  }
  if (kind === 'list') {
    if (raw === 'all') return 'all';
    const v = raw.split(',').map((s) => Number(s.trim()));
    if (v.some((x) => !Number.isInteger(x))) throw new ConfigError(`--${flag} expects "all" or comma-separated integers, got '${raw}'`);
    return v;
  }
  if (kind === 'path') return path.resolve(raw);
  return raw;
}

/** Takes the mining flags out of argv; returns them and the rest. */
function splitArgv(argv: string[]): { mine: Record<string, unknown>; rest: string[] } {
  const mine: Record<string, unknown> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z_]+)(?:=(.*))?$/s.exec(argv[i]);
    const spec = m && MINE_FLAGS.find((f) => f.flag === m[1]);
    if (!spec) {
      rest.push(argv[i]);
      continue;
    }
    const raw = m![2] ?? argv[++i];
    if (raw === undefined) throw new ConfigError(`--${spec.flag} needs a value`);
    mine[spec.key] = parseValue(spec.flag, spec.kind, raw);
  }
  return { mine, rest };
}

function mineHelp(): string {
  const rows = describeOptions(MINING_SCHEMA);
  const lines = ['Mining flags:'];
  for (const f of MINE_FLAGS) {
    if (f.key === 'truth') {
      lines.push(`  --truth <file>            synthpick-truth.json with the users' hidden clusters (default: the processed dataset's manifest, when synthetic).`);
      continue;
    }
    const r = rows.find((x) => x.key === f.key)!;
    lines.push(`  --${`${f.flag} <value>`.padEnd(24)}${r.description}${r.default !== undefined ? ` (default: ${JSON.stringify(r.default)})` : ''}`);
  }
  return lines.join('\n') + '\n\n';
}

runMain(async () => {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) process.stdout.write(mineHelp());
  const { mine, rest } = splitArgv(argv);
  const { config } = await parseRun(
    {
      name: 'mine',
      description: 'Mine similar users from the attention between trained preference tokens and one fixed target image (paper Figure 3).',
      flags: RUN_FLAGS,
      defaultConfig: path.join(__dirname, '..', 'config', 'default.json'),
    },
    rest,
  );
  const tokensPath = config.eval?.models[0]?.tokens;
  if (!tokensPath) throw new ConfigError('mine needs the trained preference tokens: --tokens_path <dir>');
  const { truth, ...flags } = mine;
  // Any split may be mined (its examples only lend their references); default: the eval split.
  const split: SplitName = (flags.split as SplitName | undefined) ?? config.eval?.split ?? 'test';
  const options = validateOptions('mine flags', MINING_SCHEMA, { ...flags, split, seed: config.seed }) as unknown as MiningOptions;

  const { assembly, logger, runDir } = await setupRun('mine', config);
  const parts = requireParts(assembly, ['backbone', 'dataset', 'tokens'], 'mine');
  const resolvedTokens = path.resolve(config.baseDir, tokensPath);
  const { result, files } = await runMining(
    { backbone: parts.backbone, dataset: parts.dataset, tokens: parts.tokens, logger },
    {
      ...options,
      tokensPath: resolvedTokens,
      // A truth sidecar is read through the dataset plugin that defines its format; without one, mining asks the dataset.
      groups: truth ? await clustersFromTruth(truth as string) : null,
      outDir: runDir,
      run: { checkpoint: (config.plugins.backbone?.options as { path?: string } | undefined)?.path, adapter: (config.plugins.backbone?.options as { adapterPath?: string } | undefined)?.adapterPath ?? null },
    },
  );
  const n = result.users.length;
  const k = Math.min(options.k, n - 1);
  const lines = [`mined ${n} users on target ${result.target.imageId.slice(0, 12)} (${result.target.foundAt}), vector length ${result.users[0].vector.length}`];
  if (result.purity && result.purityBySimilarity) {
    for (const [kind, p] of Object.entries(result.purityBySimilarity)) {
      lines.push(`purity@${k} (${kind}${kind === options.similarity ? ', reported' : ''}): ${(100 * p.purity).toFixed(2)}%   random baseline: ${(100 * p.randomBaseline).toFixed(2)}%   (${p.counted} users with a known cluster)`);
    }
  } else lines.push('no hidden clusters known: purity not computed');
  lines.push(`files: ${files.neighbours}, ${files.users}, ${files.heatmapPng}`);
  process.stdout.write(lines.join('\n') + '\n');
  logger.info('mining written', { ...files, purity: result.purity?.purity, randomBaseline: result.purity?.randomBaseline });
});
