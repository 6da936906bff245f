/**
 * Rank runner: which of these candidate images will this person like?
 *
 *   npx nx run rank:run -- --config <run config> --lora_path <adapter> [--tokens_path <tokens>]
 *     --liked a.png b.png --disliked c.png d.png --candidates dir/ [--prompt "..."] [--json]
 *   (or --user <id> [--split test] for the history of a user of the configured data set)
 *
 * The rank flags are not run-config paths, so they are taken out of argv here (as apps/mine does);
 * everything else goes to parseRun. Images are read and checked before the model loads.
 */
import * as path from 'path';
import { ConfigError, requirePath, type SplitName } from '@userpref/core';
import { EVAL_FLAGS, parseRun, requireParts, runMain, setupRun } from '@userpref/cli';
import { DEFAULT_IMAGE_SIZE, formatRanking, historyOfUser, loadPreferenceTokens, pairHistory, rankCandidates, readImagePaths, type InputImage } from '@userpref/ranking';

const RANK_FLAGS = {
  liked: { list: true, help: 'Images this person liked (pair i is the i-th liked and the i-th disliked image).' },
  disliked: { list: true, help: 'Images this person disliked, as many as --liked.' },
  candidates: { list: true, help: 'Candidate images to rank: files and/or directories (every visible file in them must be an image).' },
  prompt: { list: false, help: 'The prompt the candidates were made for (shown to the model when the config has usePrompt).' },
  user: { list: false, help: 'Instead of --liked/--disliked: the history of this user of the configured data set.' },
  split: { list: false, help: 'Split searched for --user (default: test).' },
  json: { list: false, help: 'Print the ranking as JSON.' },
} as const;
type RankFlag = keyof typeof RANK_FLAGS;

/** Takes the rank flags (list flags take every value up to the next --flag) out of argv. */
function splitArgv(argv: string[]): { rank: Partial<Record<RankFlag, string[]>>; rest: string[] } {
  const rank: Partial<Record<RankFlag, string[]>> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    if (!(name in RANK_FLAGS)) {
      rest.push(argv[i]);
      continue;
    }
    const flag = name as RankFlag;
    const values: string[] = [];
    if (flag !== 'json') {
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--') && (RANK_FLAGS[flag].list || values.length === 0)) values.push(argv[++i]);
      if (values.length === 0) throw new ConfigError(`--${flag} needs a value`);
    }
    rank[flag] = [...(rank[flag] ?? []), ...values];
  }
  return { rank, rest };
}

const RUN_FLAGS = EVAL_FLAGS.filter((f) => ['lora_path', 'tokens_path'].includes(f.name));

runMain(async () => {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`Rank flags:\n${Object.entries(RANK_FLAGS).map(([k, v]) => `  --${k}${v.list ? ' <paths...>' : k === 'json' ? '' : ' <value>'}  ${v.help}`).join('\n')}\n\n`);
  }
  const { rank, rest } = splitArgv(argv);
  const { config } = await parseRun(
    { name: 'rank', description: 'Rank candidate images for one person from their liked / disliked images.', flags: RUN_FLAGS, defaultConfig: path.join(__dirname, '..', 'config', 'default.json') },
    rest,
  );
  const user = rank.user?.[0];
  if (!rank.candidates?.length) throw new ConfigError('give the images to rank with --candidates <files or directories>');
  if (user === undefined && !rank.liked?.length && !rank.disliked?.length) throw new ConfigError('give the history with --liked ... --disliked ... (or --user <id> of the configured data set)');
  if (user !== undefined && (rank.liked || rank.disliked)) throw new ConfigError('--user takes the history from the data set: give it or --liked/--disliked, not both');
  const datasetOptions = config.plugins.dataset?.options as { imageSize?: number } | undefined;
  const size = datasetOptions?.imageSize ?? DEFAULT_IMAGE_SIZE;
  // Every file is checked before the model loads.
  const read = (paths: string[] | undefined): Promise<InputImage[]> => readImagePaths(paths ?? [], { size });
  const candidates = await read(rank.candidates);
  const liked = await read(rank.liked);
  const disliked = await read(rank.disliked);
  const pairs = user === undefined ? pairHistory(liked, disliked) : null;
  if (user === undefined) delete config.plugins.dataset;
  // A missing adapter or tokens directory is named before the model loads.
  const adapterPath = (config.plugins.backbone?.options as { adapterPath?: string | null } | undefined)?.adapterPath;
  if (adapterPath) await requirePath('adapter', path.resolve(config.baseDir, adapterPath), 'adapter_config.json');
  const tokensPath = config.eval?.models[0]?.tokens;
  if (tokensPath) await requirePath('tokens', path.resolve(config.baseDir, tokensPath));
  const { assembly, logger } = await setupRun('rank', config);
  const { backbone } = requireParts(assembly, ['backbone'], 'rank');
  if (tokensPath) await loadPreferenceTokens(backbone, assembly.tokens, path.resolve(config.baseDir, tokensPath));
  let history = pairs;
  if (!history) {
    const split = (rank.split?.[0] ?? 'test') as SplitName;
    const found = await historyOfUser(requireParts(assembly, ['dataset'], 'rank --user').dataset.split(split), user!);
    logger.info(`history of user ${user}`, { split, referencePairs: found.history.references.length, examples: found.examples });
    history = found.history;
  }
  const ranking = await rankCandidates(backbone, { history, prompt: rank.prompt?.[0] ?? '', candidates: candidates.map((c) => ({ name: c.name, image: c })) }, {
    onProgress: (done, total) => logger.info(`scored ${done}/${total} candidates`),
  });
  logger.info('ranked', { method: ranking.method, referencePairs: ranking.referencePairs, historyMs: ranking.timings.historyMs, candidatesMs: ranking.timings.candidatesMs });
  process.stdout.write(rank.json ? `${JSON.stringify(ranking, null, 2)}\n` : formatRanking(ranking));
});
