/**
 * Serve runner: the ranking service (and its page) with the model loaded once.
 *
 *   npx nx run serve:run -- --config <run config> --lora_path <adapter> [--tokens_path <tokens>]
 *     [--host 127.0.0.1] [--port 8080] [--max_candidates 64] [--max_reference_pairs 32]
 *     [--max_body_mb 32] [--max_image_mb 8] [--queue 8] [--timeout_s 60]
 *
 * The service flags are not run-config paths, so they are taken out of argv here (as apps/mine
 * does); everything else goes to parseRun. SIGTERM / SIGINT: stop accepting, finish the requests in
 * flight, exit 0.
 */
import * as path from 'path';
import { ConfigError, requirePath } from '@userpref/core';
import { EVAL_FLAGS, parseRun, requireParts, runMain, setupRun } from '@userpref/cli';
import { DEFAULT_IMAGE_SIZE, loadPreferenceTokens } from '@userpref/ranking';
import { createRankServer, DEFAULT_LIMITS, type RankLimits } from '@userpref/ranking-server';

const SERVE_FLAGS: Record<string, { help: string; number: boolean }> = {
  host: { help: 'Address to listen on (default 127.0.0.1).', number: false },
  port: { help: 'Port (default 8080; 0 = any free port).', number: true },
  max_candidates: { help: `Candidates per request (default ${DEFAULT_LIMITS.maxCandidates}).`, number: true },
  max_reference_pairs: { help: `History pairs per request (default ${DEFAULT_LIMITS.maxReferencePairs}).`, number: true },
  max_body_mb: { help: `Request size in MiB (default ${DEFAULT_LIMITS.maxBodyBytes / 2 ** 20}).`, number: true },
  max_image_mb: { help: `Size of one image in MiB (default ${DEFAULT_LIMITS.maxImageBytes / 2 ** 20}).`, number: true },
  queue: { help: `Requests that may wait behind the running one; more get 429 (default ${DEFAULT_LIMITS.queue}).`, number: true },
  timeout_s: { help: `Seconds from arrival to answer; later gets 504 (default ${DEFAULT_LIMITS.timeoutMs / 1000}).`, number: true },
  chunk: { help: 'Candidates per forward (default 16).', number: true },
};

/** Takes the service flags out of argv. */
function splitArgv(argv: string[]): { serve: Record<string, string | number>; rest: string[] } {
  const serve: Record<string, string | number> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    const spec = SERVE_FLAGS[name];
    if (!spec) {
      rest.push(argv[i]);
      continue;
    }
    const raw = argv[++i];
    if (raw === undefined) throw new ConfigError(`--${name} needs a value`);
    const value = spec.number ? Number(raw) : raw;
    if (spec.number && !(Number.isFinite(value) && (value as number) >= 0)) throw new ConfigError(`--${name} expects a non-negative number, got '${raw}'`);
    serve[name] = value;
  }
  return { serve, rest };
}

const RUN_FLAGS = EVAL_FLAGS.filter((f) => ['lora_path', 'tokens_path'].includes(f.name));

runMain(async () => {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`Service flags:\n${Object.entries(SERVE_FLAGS).map(([k, v]) => `  --${k} <value>  ${v.help}`).join('\n')}\n\n`);
  }
  const { serve, rest } = splitArgv(argv);
  const { config } = await parseRun(
    { name: 'serve', description: 'Serve the ranking of candidate images for one person over HTTP, with a page.', flags: RUN_FLAGS, defaultConfig: path.join(__dirname, '..', 'config', 'default.json') },
    rest,
  );
  const int = (k: string) => {
    const v = serve[k] as number | undefined;
    if (v !== undefined && !Number.isInteger(v)) throw new ConfigError(`--${k} expects an integer, got ${v}`);
    return v;
  };
  const mib = (k: string) => (serve[k] === undefined ? undefined : Math.round((serve[k] as number) * 2 ** 20));
  const limits: Partial<RankLimits> = Object.fromEntries(
    Object.entries({
      maxCandidates: int('max_candidates'),
      maxReferencePairs: int('max_reference_pairs'),
      maxBodyBytes: mib('max_body_mb'),
      maxImageBytes: mib('max_image_mb'),
      queue: int('queue'),
      timeoutMs: serve.timeout_s === undefined ? undefined : (serve.timeout_s as number) * 1000,
    }).filter(([, v]) => v !== undefined),
  );
  const backboneOptions = (config.plugins.backbone?.options ?? {}) as { path?: string; adapterPath?: string | null };
  const adapter = backboneOptions.adapterPath ? path.resolve(config.baseDir, backboneOptions.adapterPath) : null;
  if (adapter) await requirePath('adapter', adapter, 'adapter_config.json');
  const tokensPath = config.eval?.models[0]?.tokens;
  const tokens = tokensPath ? path.resolve(config.baseDir, tokensPath) : null;
  if (tokens) await requirePath('tokens', tokens);
  const imageSize = (config.plugins.dataset?.options as { imageSize?: number } | undefined)?.imageSize ?? DEFAULT_IMAGE_SIZE;
  delete config.plugins.dataset;
  const { assembly, logger, runtime } = await setupRun('serve', config);
  const { backbone } = requireParts(assembly, ['backbone'], 'serve');
  if (tokens) await loadPreferenceTokens(backbone, assembly.tokens, tokens);
  const server = await createRankServer({
    backbone,
    logger,
    chunk: int('chunk'),
    limits,
    model: {
      backbone: config.plugins.backbone!.name,
      base: path.resolve(config.baseDir, backboneOptions.path ?? ''),
      adapter,
      tokens,
      backend: runtime.backend,
      device: runtime.device,
      imageSize,
    },
  });
  const url = await server.listen((serve.port as number | undefined) ?? 8080, (serve.host as string | undefined) ?? '127.0.0.1');
  logger.info(`listening on ${url} (page: ${url}/, API: POST ${url}/v1/rank)`, { limits: { ...DEFAULT_LIMITS, ...limits } });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info(`${signal}: finishing the requests in flight`, server.queue.stats() as unknown as Record<string, unknown>);
      server.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped', server.queue.stats() as unknown as Record<string, unknown>);
});
