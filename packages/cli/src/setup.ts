/** Everything a runner does before its own job: logging, tensor runtime, plugin assembly. */
import * as path from 'path';
import { assemble, createLogger, type Assembly, type Logger } from '@userpref/core';
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

/** Runs `main`, printing a clean one-line error (and exit code 1) instead of a stack for config errors. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      const clean = err.name === 'ConfigError' || err.name === 'DeviceUnavailableError';
      process.stderr.write(`error: ${clean ? err.message : err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
