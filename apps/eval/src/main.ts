/** Evaluation runner: the suite of SPEC §7 on one split, written as JSON, Markdown and a plot. */
import * as path from 'path';
import { EVAL_FLAGS, parseRun, requireParts, runMain, setupRun } from '@userpref/cli';
import { markdownTable, runSuite, writeReport } from '@userpref/training';

runMain(async () => {
  const { config } = await parseRun(
    { name: 'eval', description: 'Evaluate adapters / preference tokens: accuracy with 95% CI, per-user accuracy, ROC AUC, accuracy vs reference pairs, baselines, paired differences.', flags: EVAL_FLAGS, defaultConfig: path.join(__dirname, '..', 'config', 'default.json') },
    process.argv.slice(2),
  );
  const e = config.eval;
  if (!e) throw new Error("the run config has no 'eval' section");
  const { assembly, logger, runDir } = await setupRun('eval', config);
  // Scorer rows (plugins.scorers) need no backbone; model rows do, and the suite says so.
  const parts = requireParts(assembly, ['dataset'], 'eval');
  const refPairNum = Number((config.plugins.dataset?.options as { refPairNum?: number } | undefined)?.refPairNum ?? 8);
  const refCounts = e.ref_counts === 'all' ? [...Array(refPairNum + 1).keys()] : e.ref_counts === 'none' ? [] : e.ref_counts;
  const resolve = (p?: string) => (p ? path.resolve(config.baseDir, p) : undefined);
  // An adapter given to the backbone itself (--lora_path) makes every model row a trained model,
  // not the base reading references in context (the report's Table 1 groups).
  const backboneAdapter = Boolean((config.plugins.backbone?.options as { adapterPath?: string } | undefined)?.adapterPath);
  const groupOf = (m: (typeof e.models)[number]) => m.group ?? (m.scorer === undefined && backboneAdapter ? 'trained' : undefined);
  const report = await runSuite(
    { backbone: assembly.backbone, dataset: parts.dataset, tokens: assembly.tokens, scorers: assembly.scorers, logger },
    {
      split: e.split,
      batchSize: e.eval_bz,
      limit: e.limit,
      tiePolicy: { kind: e.tie_policy, threshold: e.tie_threshold },
      bootstrapSamples: e.bootstrap_samples,
      refCounts,
      models: e.models.map((m) => ({ label: m.label, adapter: resolve(m.adapter), tokens: resolve(m.tokens), referencePairs: m.reference_pairs, curve: m.curve, scorer: m.scorer, group: groupOf(m) })),
      baselines: e.baselines,
      paired: e.paired,
      seed: config.seed,
    },
  );
  const files = await writeReport(report, runDir);
  process.stdout.write(markdownTable(report));
  logger.info('evaluation written', files);
});
