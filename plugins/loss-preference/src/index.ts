/** @userpref/loss-preference: the paper's preference losses (SPEC §4) as userpref loss plugins. */
export { BasePreferenceLoss, ContrastivePreferenceLoss, BradleyTerryPreferenceLoss, checkPairLogits, crossEntropyAt } from './losses';
export { contrastiveOptionsSchema } from './options';
export type { ContrastiveOptions } from './options';
export { userprefPlugin, contributions } from './plugin';
