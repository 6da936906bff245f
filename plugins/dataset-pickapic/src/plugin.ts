/**
 * Wiring: the 'pickapic' dataset contribution, its options schema, and the ContainerModule that
 * binds PickapicDataset to the PreferenceDataset contract under that name.
 */
import { ContainerModule, inject, injectable, named, optional } from 'inversify';
import { Logger, PluginOptions, PreferenceDataset, RunContext, optionsName, type Contribution, type UserprefPlugin } from '@userpref/core';
import { PickapicDataset, pickapicOptionsSchema, type PickapicOptions } from './dataset';

export const contributions: Contribution[] = [
  {
    kind: 'dataset',
    name: 'pickapic',
    description:
      'Pick-a-Pic v2 (or the paper\'s processed release, or the synthpick benchmark) after `cli.ts import`: per-user examples of refPairNum (liked, disliked, prompt) references and one target comparison (SPEC §1, §6).',
    optionsSchema: pickapicOptionsSchema,
  },
];

@injectable()
class PickapicDatasetFromOptions extends PickapicDataset {
  constructor(
    @inject(PluginOptions) @named(optionsName('dataset', 'pickapic')) options: PickapicOptions,
    @inject(RunContext) run: RunContext,
    @inject(Logger) @optional() logger?: Logger,
  ) {
    super(options, run, logger);
  }
}

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/dataset-pickapic',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    bind<PreferenceDataset>(PreferenceDataset).to(PickapicDatasetFromOptions).inSingletonScope().whenNamed('pickapic');
  }),
};
