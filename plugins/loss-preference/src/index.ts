/** @userpref/loss-preference: the paper's preference losses (SPEC §4) as userpref loss plugins. */
export { BasePreferenceLoss, ContrastivePreferenceLoss, BradleyTerryPreferenceLoss, checkPairLogits, crossEntropyAt } from './losses';
export type { ContrastiveOptions } from './losses';
export { userprefPlugin, contributions } from './plugin';
