import 'reflect-metadata';
export * from './contracts';
export * from './plugin/manifest';
export * from './plugin/validate';
export * from './plugin/assembly';
export * from './config/overrides';
export { Rng } from './random';
export { createLogger, memoryLogger } from './logging';
export type { LoggerOptions } from './logging';
