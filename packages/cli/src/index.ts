export * from './flags';
export * from './run-config';
export { parseRun, loadConfigFile } from './program';
export type { RunnerSpec, ParsedRun } from './program';
export { setupRun, runMain, describeFailure, MAKES } from './setup';
export type { RunSetup } from './setup';
export { requireParts, trainOptionsFrom } from './assemble-run';
