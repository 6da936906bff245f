/**
 * Writes one user of the configured data set as image files, to try the rank command, the service
 * and the page on real data set images:
 *
 *   npx nx run rank:export-user -- --config apps/demo/config/demo.json --out runs/rank-example [--user <id>] [--split test]
 *
 * <out>/liked/NN.png and <out>/disliked/NN.png: the user's reference pairs (pair NN);
 * <out>/candidates/: both images of each of the user's comparisons in the split (cNN-a.png, cNN-b.png);
 * <out>/truth.json: which image of each comparison the user preferred (and synthpick's true
 * probability where the data set knows it). Default user: the one with the most comparisons.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { ConfigError, type PreferenceExample, type SplitName } from '@userpref/core';
import { parseRun, requireParts, runMain, setupRun } from '@userpref/cli';
import { writePng } from '@userpref/ranking';

function take(argv: string[], flag: string): { value?: string; rest: string[] } {
  const i = argv.indexOf(`--${flag}`);
  if (i < 0) return { rest: argv };
  if (argv[i + 1] === undefined || argv[i + 1].startsWith('--')) throw new ConfigError(`--${flag} needs a value`);
  return { value: argv[i + 1], rest: [...argv.slice(0, i), ...argv.slice(i + 2)] };
}

runMain(async () => {
  let argv = process.argv.slice(2);
  const user = take(argv, 'user');
  argv = user.rest;
  const splitFlag = take(argv, 'split');
  argv = splitFlag.rest;
  const { config } = await parseRun({ name: 'rank:export-user', description: 'Write one data set user as image files (liked/, disliked/, candidates/, truth.json) under --out.', flags: [], defaultConfig: path.join(__dirname, '..', 'config', 'default.json') }, argv);
  config.plugins = { dataset: config.plugins.dataset };
  config.exp_name = '.';
  const { assembly, logger } = await setupRun('export-user', config);
  const split = requireParts(assembly, ['dataset'], 'rank:export-user').dataset.split((splitFlag.value ?? 'test') as SplitName);
  const byUser = new Map<string, PreferenceExample[]>();
  for (let i = 0; i < split.size; i++) {
    const ex = await split.get(i);
    byUser.set(ex.userId, [...(byUser.get(ex.userId) ?? []), ex]);
  }
  const chosen = user.value ?? [...byUser.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1))[0][0];
  const examples = byUser.get(chosen);
  if (!examples) throw new ConfigError(`user '${chosen}' has no example in the ${split.name} split`);
  const out = config.out;
  const nn = (i: number) => String(i).padStart(2, '0');
  for (const [i, ref] of examples[0].references.entries()) {
    await writePng(await ref.liked.decode(), path.join(out, 'liked', `${nn(i)}.png`));
    await writePng(await ref.disliked.decode(), path.join(out, 'disliked', `${nn(i)}.png`));
  }
  const truth = [];
  for (const [i, ex] of examples.entries()) {
    const [a, b] = [`c${nn(i)}-a.png`, `c${nn(i)}-b.png`];
    await writePng(await ex.target.image0.decode(), path.join(out, 'candidates', a));
    await writePng(await ex.target.image1.decode(), path.join(out, 'candidates', b));
    truth.push({ comparison: i, prompt: ex.target.prompt, image0: a, image1: b, label0: ex.target.label0, preferred: ex.target.label0 >= 0.5 ? a : b });
  }
  await fs.writeFile(path.join(out, 'truth.json'), `${JSON.stringify({ user: chosen, split: split.name, referencePairs: examples[0].references.length, comparisons: truth }, null, 2)}\n`);
  logger.info(`user ${chosen}: ${examples[0].references.length} reference pairs, ${examples.length} comparisons (${2 * examples.length} candidates) written`, { out });
});
