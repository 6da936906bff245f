/**
 * @userpref/ranking-server: the ranking of @userpref/ranking as an HTTP service on Fastify, with a
 * page to use it from a browser. The runner (apps/serve) loads the model and hands it over.
 */
export { createRankServer, DEFAULT_LIMITS } from './server';
export type { RankServer, RankServerOptions, RankLimits, ServedModel } from './server';
export { RankQueue, QueueFullError, JobTimeoutError } from './queue';
export type { QueueStats } from './queue';
export { runLoad } from './load';
export type { LoadOptions, LoadResult } from './load';
