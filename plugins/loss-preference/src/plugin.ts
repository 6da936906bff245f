/**
 * Wiring of the preference losses: one contribution per loss, each with its options schema, all
 * bound to the PreferenceLoss contract under their names. Weights belong to the run config
 * (LossSelection.weight), not to a loss, so no schema here has a weight.
 */
import { ContainerModule, inject, injectable, named } from 'inversify';
import { PluginOptions, PreferenceLoss, optionsName, type Contribution, type UserprefPlugin } from '@userpref/core';
import { BasePreferenceLoss, BradleyTerryPreferenceLoss, ContrastivePreferenceLoss, type ContrastiveOptions } from './losses';

export const contributions: Contribution[] = [
  {
    kind: 'loss',
    name: 'base',
    description: 'L_base = (CE(z(neg), "-") + CE(z(pos), "+")) / 2: full-vocabulary cross-entropy of the readout token at the last position, batch mean (SPEC §4).',
    optionsSchema: { type: 'object', properties: {} },
  },
  {
    kind: 'loss',
    name: 'contrastive',
    description:
      'L_cp = -log softmax([z(pos)[+], z(neg)[+]])[0] - log softmax([z(pos)[-], z(neg)[-]])[1], batch mean (SPEC §4): "+" higher on the liked candidate, "-" higher on the disliked one.',
    optionsSchema: {
      type: 'object',
      properties: {
        temperature: {
          type: 'number',
          exclusiveMinimum: 0,
          default: 1,
          description: 'Both logit pairs are divided by this before the two-way softmax. 1 is the paper (no temperature).',
        },
      },
    },
  },
  {
    kind: 'loss',
    name: 'bradley-terry',
    description: '-log sigmoid(s(liked) - s(disliked)) with s = z[+] - z[-], the log-odds of the score P("+"), batch mean. Not in the paper: an alternative pairwise objective.',
    optionsSchema: { type: 'object', properties: {} },
  },
];

@injectable()
class ContrastiveFromOptions extends ContrastivePreferenceLoss {
  constructor(@inject(PluginOptions) @named(optionsName('loss', 'contrastive')) options: ContrastiveOptions) {
    super(options);
  }
}

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/loss-preference',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    bind<PreferenceLoss>(PreferenceLoss).toDynamicValue(() => new BasePreferenceLoss()).whenNamed('base');
    bind<PreferenceLoss>(PreferenceLoss).to(ContrastiveFromOptions).whenNamed('contrastive');
    bind<PreferenceLoss>(PreferenceLoss).toDynamicValue(() => new BradleyTerryPreferenceLoss()).whenNamed('bradley-terry');
  }),
};
