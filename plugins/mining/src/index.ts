/**
 * @userpref/mining: similar-user mining from preference-token attention (the paper's Figure 3):
 * per-user attention vectors on a fixed target image, cosine nearest users, purity against hidden
 * taste clusters with its exact random baseline, and the report files.
 */
export { similarityMatrix, nearestNeighbours, clusterPurity, at } from './similarity';
export type { SimilarityKind, SimilarityMatrix, Neighbour, PurityResult } from './similarity';
export { targetToPrefixAttention, resolveLayers, resolveHeads } from './attention';
export type { TargetRows } from './attention';
export { Idefics2AttentionProbe } from './probe';
export type { AttentionProbe, AttentionSelection, ProbeForward } from './probe';
export { mineSimilarUsers, firstExampleByUser, findTarget, reorderedExample } from './mine';
export type { MinedUser, MiningTarget, MiningResult, MiningInputs } from './mine';
export { MINING_SCHEMA, MINING_DEFAULTS } from './options';
export type { MiningOptions } from './options';
export { clustersFromProcessed, clustersFromTruth } from './clusters';
export type { ClusterSource } from './clusters';
export { writeMiningReport, neighboursJson, usersCsv, heatmapSvg, heatmapOrder } from './report';
export type { ReportExtras, WrittenReport } from './report';
export { runMining, findClusters } from './run';
export type { MiningRunComponents, MiningRunOptions, MiningRun } from './run';
