/** Everything a runner does before its own job: logging, tensor runtime, plugin assembly. */
import * as path from 'path';
import { MissingInputError, assemble, createLogger, isExpectedError, type Assembly, type InputKind, type Logger } from '@userpref/core';
import { initRuntime, type RuntimeInfo } from '@userpref/runtime';
import type { RunConfig } from './run-config';

export interface RunSetup {
  logger: Logger;
  runtime: RuntimeInfo;
  assembly: Assembly;
  runDir: string;
}

export async function setupRun(app: string, config: RunConfig): Promise<RunSetup> {
  const runDir = path.join(config.out, config.exp_name);
  const logger = createLogger({ jsonFile: path.join(runDir, `${app}.log.jsonl`), bindings: { app } });
  const runtime = await initRuntime({ device: config.device, log: (m, f) => logger.info(m, f) });
  const assembly = await assemble(config.plugins, { logger, seed: config.seed, baseDir: config.baseDir });
  logger.info(`${app}: plugins assembled`, {
    backbone: config.plugins.backbone?.name,
    losses: (config.plugins.losses ?? []).map((l) => `${l.name}x${l.weight ?? 1}`).join('+'),
    tokens: config.plugins.tokens?.name ?? 'none',
    dataset: config.plugins.dataset?.name,
  });
  if (assembly.dataset) await assembly.dataset.init();
  if (assembly.backbone) await assembly.backbone.init();
  return { logger, runtime, assembly, runDir };
}

/** Where each kind of missing input comes from, told after the error so the user knows what to run. */
export const MAKES: Record<InputKind, string> = {
  checkpoint:
    'A checkpoint is a Hugging Face IDEFICS2 directory (config.json, safetensors, tokenizer). The committed stand-in base is apps/demo/base/idefics2-small-standin; ' +
    '`npx nx run checkpoint:run -- --preset small --out <dir>` writes a random one (random weights train to chance); ' +
    'for the real model give --checkpoint <a local copy of HuggingFaceM4/idefics2-8b>.',
  dataset:
    '`npm start` writes data/synthpick/processed; `node tools/scripts/run-ts.js plugins/dataset-pickapic/src/cli.ts import --from <files> --out <dir>` ' +
    "imports Pick-a-Pic v2 shards or the paper's pickles (then --data <dir>).",
  adapter: 'Stage 1 (`npx nx run train:run`) writes <out>/<exp_name>/checkpoint-N/adapter; --lora_path also takes a run directory (its newest checkpoint).',
  tokens: 'Stage 2 (`npx nx run train2:run`) writes <out>/<exp_name>/checkpoint-N/tokens; --tokens_path also takes a run directory (its newest checkpoint).',
  file: '',
};

/** The text printed for a failed run: expected failures in one line (plus what makes a missing input), bugs with their stack. */
export function describeFailure(err: unknown, verbose: boolean): string {
  if (!(err instanceof Error)) return `error: ${String(err)}`;
  const expected = isExpectedError(err);
  const lines = [`error: ${expected && !verbose ? err.message : (err.stack ?? err.message)}`];
  if (err instanceof MissingInputError || (err as { name?: string }).name === 'MissingInputError') {
    const kind = (err as MissingInputError).kind;
    if (MAKES[kind]) lines.push(`  ${MAKES[kind]}`);
  }
  return lines.join('\n');
}

/**
 * Runs `main` and exits: 0 on success; 1 on failure, printing expected failures (bad input,
 * missing files, bad options) as one line and anything else with its stack. `--verbose` prints
 * the stack of every failure.
 */
export function runMain(main: () => Promise<void>): void {
  const verbose = process.argv.includes('--verbose') || process.env.USERPREF_VERBOSE === '1';
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${describeFailure(err, verbose)}\n`);
      process.exit(1);
    },
  );
}
