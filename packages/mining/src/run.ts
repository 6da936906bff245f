/**
 * One mining run from assembled components: loads the preference tokens, asks the backbone for its
 * attention probe (the optional AttentionProbeProvider capability), takes the known user groups
 * (given by the caller, else the dataset's own through UserGroupsProvider), mines, writes the
 * report. The mine app only parses flags and calls this.
 */
import { hasAttentionProbe, hasKnownUserGroups, type Backbone, type Logger, type PreferenceDataset, type PreferenceTokens, type UserGroups } from '@userpref/core';
import { mineSimilarUsers, type MiningResult } from './mine';
import type { MiningOptions } from './options';
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
  /** Known user groups to measure purity against (e.g. a synthpick truth file's clusters); default: the dataset's, if it knows any. */
  readonly groups?: UserGroups | null;
  /** Output directory (<out>/<exp_name>). */
  readonly outDir: string;
  /** Recorded in neighbours.json. */
  readonly run?: Record<string, unknown>;
}

export interface MiningRun {
  readonly result: MiningResult;
  readonly files: WrittenReport;
  /** The user groups purity was measured against, if any. */
  readonly groups: UserGroups | null;
}

/** The groups given, else the dataset's known user groups when it offers them, else null. */
export async function findUserGroups(dataset: PreferenceDataset, given?: UserGroups | null): Promise<UserGroups | null> {
  if (given) return given;
  return hasKnownUserGroups(dataset) ? dataset.knownUserGroups() : null;
}

export async function runMining(c: MiningRunComponents, o: MiningRunOptions): Promise<MiningRun> {
  const { backbone } = c;
  if (!hasAttentionProbe(backbone)) throw new Error("mining reads attention maps through the backbone's attentionProbe() capability (AttentionProbeProvider); the configured backbone does not offer it (@userpref/backbone-idefics2 does)");
  const { tokensPath, groups: given, outDir, run, ...options } = o;
  if (!tokensPath) throw new Error('mining needs trained preference tokens: give --tokens_path <dir>');
  c.tokens.build(backbone.textHiddenSize);
  await c.tokens.load(tokensPath);
  const probe = await backbone.attentionProbe();
  const groups = await findUserGroups(c.dataset, given);
  if (groups) c.logger.info('known user groups found', { source: groups.source, users: groups.groups.size });
  else c.logger.warn('no known user groups (the dataset records none, e.g. not synthpick data, and none were given, e.g. --truth): purity is not computed');
  const split = c.dataset.split(options.split ?? 'test');
  const result = await mineSimilarUsers({ probe, split, prefix: c.tokens, clusters: groups?.groups ?? null, logger: c.logger }, options);
  const files = await writeMiningReport(result, outDir, { clusterSource: groups?.source ?? null, run: { tokensPath, ...run } });
  return { result, files, groups };
}
