/**
 * One mining run from assembled plugins: loads the preference tokens, builds the attention probe on
 * the IDEFICS2 backbone, finds the clusters (truth file, else the processed dataset's manifest),
 * mines, writes the report. The mine app only parses flags and calls this.
 */
import type { Backbone, Logger, PreferenceDataset, PreferenceTokens } from '@userpref/core';
import { Idefics2Backbone } from '@userpref/backbone-idefics2';
import { clustersFromProcessed, clustersFromTruth, type ClusterSource } from './clusters';
import { mineSimilarUsers, type MiningResult } from './mine';
import type { MiningOptions } from './options';
import { Idefics2AttentionProbe } from './probe';
import { writeMiningReport, type WrittenReport } from './report';

export interface MiningRunComponents {
  readonly backbone: Backbone;
  readonly dataset: PreferenceDataset;
  readonly tokens: PreferenceTokens;
  readonly logger: Logger;
}

export interface MiningRunOptions extends Partial<MiningOptions> {
  /** Trained preference tokens (directory saved by stage 2, .safetensors, or the paper's prompt_pool.pt). */
  readonly tokensPath: string;
  /** synthpick-truth.json; default: the clusters recorded in the processed dataset, if any. */
  readonly truthFile?: string | null;
  /** Output directory (<out>/<exp_name>). */
  readonly outDir: string;
  /** Recorded in neighbours.json. */
  readonly run?: Record<string, unknown>;
}

export interface MiningRun {
  readonly result: MiningResult;
  readonly files: WrittenReport;
  readonly clusters: ClusterSource | null;
}

/** Clusters from the truth file when given, else from the dataset's processed directory (if it has one). */
export async function findClusters(dataset: PreferenceDataset, truthFile?: string | null): Promise<ClusterSource | null> {
  if (truthFile) return clustersFromTruth(truthFile);
  const dir = (dataset as { directory?: unknown }).directory;
  return typeof dir === 'string' ? clustersFromProcessed(dir) : null;
}

export async function runMining(c: MiningRunComponents, o: MiningRunOptions): Promise<MiningRun> {
  if (!(c.backbone instanceof Idefics2Backbone)) throw new Error('mining reads attention maps from the IDEFICS2 backbone (@userpref/backbone-idefics2); the configured backbone is another one');
  const { tokensPath, truthFile, outDir, run, ...options } = o;
  if (!tokensPath) throw new Error('mining needs trained preference tokens: give --tokens_path <dir>');
  c.tokens.build(c.backbone.textHiddenSize);
  await c.tokens.load(tokensPath);
  const probe = await Idefics2AttentionProbe.create(c.backbone);
  const clusters = await findClusters(c.dataset, truthFile);
  if (clusters) c.logger.info('hidden clusters found', { source: clusters.source, users: clusters.clusters.size });
  else c.logger.warn('no hidden clusters (not synthpick data, and no --truth): purity is not computed');
  const split = c.dataset.split(options.split ?? 'test');
  const result = await mineSimilarUsers({ probe, split, prefix: c.tokens, clusters: clusters?.clusters ?? null, logger: c.logger }, options);
  const files = await writeMiningReport(result, outDir, { clusterSource: clusters?.source ?? null, run: { tokensPath, ...run } });
  return { result, files, clusters };
}
