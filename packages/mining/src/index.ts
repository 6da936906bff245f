/**
 * @userpref/mining: similar-user mining from preference-token attention (the paper's Figure 3), an
 * analysis library over trained components (not a plugin: no run config selects it): per-user
 * attention vectors on a fixed target image read through the backbone's AttentionProbe
 * capability, cosine nearest users, purity against known user groups (the dataset's, e.g.
 * synthpick's hidden taste clusters) with its exact random baseline, and the report files.
 */
export { similarityMatrix, nearestNeighbours, clusterPurity, at } from './similarity';
export type { SimilarityKind, SimilarityMatrix, Neighbour, PurityResult } from './similarity';
export { resolveLayers, resolveHeads } from './selection';
export { mineSimilarUsers, firstExampleByUser, findTarget, reorderedExample } from './mine';
export type { MinedUser, MiningTarget, MiningResult, MiningInputs } from './mine';
export { MINING_SCHEMA, MINING_DEFAULTS } from './options';
export type { MiningOptions } from './options';
export { writeMiningReport, neighboursJson, usersCsv, heatmapSvg, heatmapOrder } from './report';
export type { ReportExtras, WrittenReport } from './report';
export { runMining, findUserGroups } from './run';
export type { MiningRunComponents, MiningRunOptions, MiningRun } from './run';
