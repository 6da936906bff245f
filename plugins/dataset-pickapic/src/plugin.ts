/**
 * Wiring: the 'pickapic' dataset contribution, its options schema, and the factory that makes a
 * PickapicDataset from the validated options; definePlugin binds it to the PreferenceDataset
 * contract under that name (one instance per run).
 */
import { defineContribution, definePlugin } from '@userpref/core';
import { PickapicDataset, pickapicOptionsSchema } from './dataset';

export const userprefPlugin = definePlugin('@userpref/dataset-pickapic', [
  defineContribution({
    kind: 'dataset',
    name: 'pickapic',
    description:
      'Pick-a-Pic v2 (or the paper\'s processed release, or the synthpick benchmark) after `cli.ts import`: per-user examples of refPairNum (liked, disliked, prompt) references and one target comparison (SPEC §1, §6).',
    optionsSchema: pickapicOptionsSchema,
    singleton: true,
    create: (options, { run, logger }) => new PickapicDataset(options, run, logger),
  }),
]);

export const { contributions } = userprefPlugin;
