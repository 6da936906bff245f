/**
 * Command line of the dataset package:
 *
 *   node tools/scripts/run-ts.js plugins/dataset-pickapic/src/cli.ts import --from <parquet files | dir | pkl> --out <dir>
 *        [--split train|validation|test] [--split-protocol upstream|by-comparison|by-user]
 *        [--references train|train+same-split] [--seed 42] [--validation-fraction 0.1] [--test-fraction 0.1]
 *        [--keep-ties] [--skip-bad-row-groups] [--batch-rows 256]
 *   node tools/scripts/run-ts.js plugins/dataset-pickapic/src/cli.ts synth --out <dir> [--preset tiny|default|population] [--seed 42] [--population-seed <seed>]
 *        [--params '<json overrides of the preset, e.g. {"clusters":2,"tasteGroups":["colour"]}>'] [--import <processed dir>]
 */
import { createLogger, type SplitName } from '@userpref/core';
import { OTHER_SKIP_REASONS, SKIP_REASONS, importDataset, type ImportResult } from './import';
import { REFERENCE_SOURCES, SPLIT_PROTOCOLS, type ReferenceSource, type SplitProtocol } from './splits';
import { PRESETS, SynthpickParamsError, generateSynthpick, type SynthpickParams, type SynthpickPreset } from './synthpick';

const USAGE = `usage:
  cli.ts import --from <file|dir> [--from ...] --out <dir> [--split train|validation|test]
                [--split-protocol upstream|by-comparison|by-user] [--references train|train+same-split]
                [--seed 42] [--validation-fraction 0.1] [--test-fraction 0.1] [--keep-ties]
                [--skip-bad-row-groups] [--batch-rows 256] [--concurrency 4]
         Splits: Pick-a-Pic v2 shards keep the split of their file name (train-, validation-, test-,
         validation_unique- = validation, test_unique- = test), or --split for every file; re-split
         only with --split-protocol by-comparison|by-user (synthpick data: by-comparison by default).
  cli.ts synth --out <dir> [--preset ${Object.keys(PRESETS).join('|')}] [--seed 42] [--population-seed <seed>]
                [--params '<json: overrides of the preset's parameters>'] [--import <processed dir>]`;

class UsageError extends Error {}

function parse(argv: string[]): { command: string; flags: Map<string, string[]> } {
  const [command, ...rest] = argv;
  const flags = new Map<string, string[]>();
  const booleans = new Set(['keep-ties', 'skip-bad-row-groups', 'help']);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith('--')) {
      // Extra values after --from belong to it (a shell glob expands to many files).
      const last = [...flags.keys()].pop();
      if (last === 'from') flags.get('from')!.push(a);
      else throw new UsageError(`unexpected argument '${a}'`);
      continue;
    }
    const [key, inline] = a.slice(2).split(/=(.*)/s);
    if (booleans.has(key)) {
      flags.set(key, ['true']);
      continue;
    }
    const value = inline ?? rest[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    flags.set(key, [...(flags.get(key) ?? []), value]);
  }
  return { command: command ?? '', flags };
}

function one(flags: Map<string, string[]>, key: string): string | undefined {
  return flags.get(key)?.at(-1);
}

function num(flags: Map<string, string[]>, key: string): number | undefined {
  const v = one(flags, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${key} must be a number, got '${v}'`);
  return n;
}

const KNOWN: Record<string, string[]> = {
  import: ['from', 'out', 'split-protocol', 'references', 'seed', 'validation-fraction', 'test-fraction', 'keep-ties', 'skip-bad-row-groups', 'split', 'batch-rows', 'concurrency'],
  synth: ['out', 'preset', 'seed', 'population-seed', 'params', 'import'],
};

export async function main(argv: string[]): Promise<number> {
  const log = createLogger();
  let parsed;
  try {
    parsed = parse(argv);
    if (!KNOWN[parsed.command]) throw new UsageError(parsed.command ? `unknown command '${parsed.command}'` : 'no command');
    for (const k of parsed.flags.keys()) if (!KNOWN[parsed.command].includes(k)) throw new UsageError(`unknown option --${k} for '${parsed.command}'`);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    throw err;
  }
  const { command, flags } = parsed;
  const out = one(flags, 'out');
  if (!out) {
    process.stderr.write(`--out is required\n${USAGE}\n`);
    return 2;
  }
  const seed = num(flags, 'seed') ?? 42;
  if (command === 'import') {
    const from = flags.get('from') ?? [];
    if (!from.length) {
      process.stderr.write(`--from is required\n${USAGE}\n`);
      return 2;
    }
    // Only what was asked for is passed: the import picks the defaults and says which it used.
    const protocol = one(flags, 'split-protocol') as SplitProtocol | undefined;
    if (protocol !== undefined && !SPLIT_PROTOCOLS.includes(protocol)) {
      process.stderr.write(`--split-protocol must be one of ${SPLIT_PROTOCOLS.join(', ')}, got '${protocol}'\n`);
      return 2;
    }
    const references = one(flags, 'references') as ReferenceSource | undefined;
    if (references !== undefined && !REFERENCE_SOURCES.includes(references)) {
      process.stderr.write(`--references must be one of ${REFERENCE_SOURCES.join(', ')}, got '${references}'\n`);
      return 2;
    }
    const split = one(flags, 'split') as SplitName | undefined;
    if (split && !['train', 'validation', 'test'].includes(split)) {
      process.stderr.write(`--split must be train, validation or test, got '${split}'\n`);
      return 2;
    }
    const r = await importDataset({
      from,
      out,
      splitProtocol: protocol,
      references,
      skipBadRowGroups: flags.has('skip-bad-row-groups'),
      seed,
      validationFraction: num(flags, 'validation-fraction'),
      testFraction: num(flags, 'test-fraction'),
      keepTies: flags.has('keep-ties'),
      split,
      batchRows: num(flags, 'batch-rows'),
      concurrency: num(flags, 'concurrency'),
      logger: log,
    });
    process.stdout.write(importReport(r));
    return 0;
  }
  const preset = (one(flags, 'preset') ?? 'default') as SynthpickPreset;
  if (!(preset in PRESETS)) {
    process.stderr.write(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${preset}'\n`);
    return 2;
  }
  const populationSeed = num(flags, 'population-seed');
  let params: Partial<SynthpickParams> | undefined;
  const rawParams = one(flags, 'params');
  if (rawParams !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawParams);
    } catch (err) {
      process.stderr.write(`--params must be a JSON object: ${(err as Error).message}\n`);
      return 2;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      process.stderr.write(`--params must be a JSON object, got ${rawParams}\n`);
      return 2;
    }
    params = parsed as Partial<SynthpickParams>;
  }
  let g;
  try {
    g = await generateSynthpick({ preset, seed, populationSeed, params, outDir: out, onProgress: (d, t) => log.info('synthpick: drawing images', { done: d, total: t }) });
  } catch (err) {
    // Bad parameters are found before anything is written.
    if (!(err instanceof SynthpickParamsError)) throw err;
    process.stderr.write(`--params: ${err.message}\n`);
    return 2;
  }
  log.info('synthpick: written', { files: g.files.length, rows: g.rows, images: g.images, truth: g.truthFile });
  process.stdout.write(
    `synthpick ${preset}${params ? ` ${JSON.stringify(params)}` : ''} seed ${seed}${populationSeed !== undefined ? ` (population ${populationSeed})` : ''}: ${g.summary.users} users, ${g.rows} comparisons; Bayes-optimal accuracy ${(100 * g.summary.bayesOptimalAccuracy).toFixed(1)}%, ` +
      `population-average predictor ${(100 * g.summary.populationAccuracy).toFixed(1)}%\n`,
  );
  const processed = one(flags, 'import');
  if (processed) {
    const r = await importDataset({ from: [out], out: processed, seed, logger: log });
    process.stdout.write(`imported into ${processed}: rows read ${r.reconciliation.read}, kept ${r.reconciliation.kept}\n`);
  }
  return 0;
}

/** The import's summary: rows per source split and per reason, examples per split, the total. */
export function importReport(r: ImportResult): string {
  const reasons = [...SKIP_REASONS, ...OTHER_SKIP_REASONS, 'bad_references'].filter((k) => Object.values(r.bySplit).some((p) => p.skipped[k]) || k in r.reconciliation.skipped);
  const head = ['files', 'read', 'kept', ...reasons];
  const line = (name: string, p: ImportResult['reconciliation']) => [name, p.read, p.kept, ...reasons.map((k) => p.skipped[k] ?? 0)].map(String);
  const table = [head, ...Object.entries(r.bySplit).map(([k, p]) => line(k === 'none' ? '(no split)' : k, p)), line('total', r.reconciliation)];
  const widths = head.map((_, j) => Math.max(...table.map((row) => row[j].length)));
  const lines = [
    `split protocol ${r.protocol}${r.references ? `; references from ${r.references === 'train' ? "the user's training comparisons" : "the user's training comparisons and the target's own split"}` : ''}`,
    ...table.map((row) => row.map((c, j) => (j ? c.padStart(widths[j]) : c.padEnd(widths[j]))).join('  ')),
    ...(['train', 'validation', 'test'] as const).map((s) => {
      const x = r.splits[s];
      return `${s}: ${x.examples} examples, ${x.users} users${x.withoutReferences ? `, ${x.withoutReferences} without any reference` : ''}`;
    }),
  ];
  if (r.resplit) {
    for (const [from, to] of Object.entries(r.resplit)) {
      lines.push(`re-split: comparisons from ${from === 'none' ? 'files without a split' : `${from} files`} -> ${Object.entries(to).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    }
  }
  const rec = r.reconciliation;
  lines.push(`rows read ${rec.read} = kept ${rec.kept} + ${Object.entries(rec.skipped).map(([k, v]) => `${k} ${v}`).join(' + ')}`);
  return lines.join('\n') + '\n';
}

if (require.main === module || process.argv[1] === __filename) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(1);
    },
  );
}
