/**
 * Research measurement (README, "The embedded demo"): which prompt of a trained prompt pool each
 * user picks, against the user's hidden taste camp. For each user of a split (their first example
 * there, references as mining reads them), the pool's selection is read after a forward pass; the
 * table counts users per (camp, prompt), and "camp-consistent" is the share of users who picked
 * their camp's most common prompt.
 *
 *   node tools/scripts/run-ts.js research/standin/pool-selection.ts --config <a demo config with tokens 'prompt-pool'> \
 *     --lora_path runs/demo/stage1/checkpoint-150/adapter --tokens_path runs/demo/stage2/checkpoint-20/tokens \
 *     --truth data/synthpick/raw/synthpick-truth.json [--split test]
 */
import { readFileSync } from 'fs';
import { tmpdir } from 'os';
import { EVAL_FLAGS, parseRun, requireParts, setupRun } from '@userpref/cli';
import type { SplitName } from '@userpref/core';
import { clusterPurity, firstExampleByUser, nearestNeighbours, similarityMatrix } from '@userpref/mining';
import { PromptPoolTokens } from '@userpref/preference-tokens';

async function main(argv: string[]): Promise<void> {
  const take = (flag: string, def: string | null): string => {
    const i = argv.indexOf(`--${flag}`);
    if (i < 0) {
      if (def === null) throw new Error(`--${flag} is required`);
      return def;
    }
    const v = argv[i + 1];
    argv.splice(i, 2);
    return v;
  };
  const splitName = take('split', 'test') as SplitName;
  const truth = JSON.parse(readFileSync(take('truth', null), 'utf8')) as { users: Array<{ user_id: string; cluster: number }> };
  const camp = new Map(truth.users.map((u) => [u.user_id, u.cluster]));
  const { config } = await parseRun({ name: 'eval', description: 'pool selection', flags: EVAL_FLAGS, defaultConfig: 'apps/demo/config/demo.json' }, argv);
  const model = config.eval?.models[0];
  if (!model?.tokens) throw new Error('--tokens_path is required (and --lora_path for the stage-1 adapter)');
  const { assembly } = await setupRun('eval', { ...config, out: tmpdir(), exp_name: 'userpref-pool-selection' });
  const parts = requireParts(assembly, ['backbone', 'dataset', 'tokens'], 'pool-selection');
  if (!(parts.tokens instanceof PromptPoolTokens)) throw new Error("the config's tokens are not 'prompt-pool'");
  const pool = parts.tokens;
  pool.build(parts.backbone.textHiddenSize);
  await pool.load(model.tokens);
  // The queries the pool saw, to measure how well they alone tell the camps apart.
  const queries: number[][] = [];
  parts.backbone.setPrefixProvider({
    length: pool.length,
    prefix: (ctx) => {
      queries.push(Array.from(ctx.preferenceDirection.dataSync()));
      return pool.prefix(ctx);
    },
  });
  const users = await firstExampleByUser(parts.dataset.split(splitName));
  const counts = new Map<string, number>();
  const picks: Array<{ camp: number; prompt: number }> = [];
  for (const u of users) {
    const prepared = await parts.backbone.prepare([u.example]);
    const out = parts.backbone.pairLogits(prepared, { training: false });
    out.liked.dispose();
    out.disliked.dispose();
    prepared.dispose();
    const prompt = pool.lastSelection()[0][0];
    const c = camp.get(u.userId) ?? -1;
    picks.push({ camp: c, prompt });
    counts.set(`${c}:${prompt}`, (counts.get(`${c}:${prompt}`) ?? 0) + 1);
  }
  const camps = [...new Set(picks.map((p) => p.camp))].sort((a, b) => a - b);
  const prompts = [...new Set(picks.map((p) => p.prompt))].sort((a, b) => a - b);
  console.log(`| camp | ${prompts.map((p) => `prompt ${p}`).join(' | ')} |`);
  console.log(`|---|${prompts.map(() => '---:').join('|')}|`);
  let consistent = 0;
  for (const c of camps) {
    const row = prompts.map((p) => counts.get(`${c}:${p}`) ?? 0);
    consistent += Math.max(...row);
    console.log(`| ${c} | ${row.join(' | ')} |`);
  }
  console.log(`camp-consistent: ${consistent} of ${picks.length} users (${((100 * consistent) / picks.length).toFixed(1)}%)`);
  const clusters = picks.map((p) => (p.camp < 0 ? null : p.camp));
  for (const kind of ['cosine', 'centered-cosine'] as const) {
    const q = clusterPurity(nearestNeighbours(similarityMatrix(queries, kind), 5), clusters);
    console.log(`purity@5 of the preference-direction queries themselves (${kind}): ${(100 * q.purity).toFixed(1)}% (random ${(100 * q.randomBaseline).toFixed(1)}%)`);
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
