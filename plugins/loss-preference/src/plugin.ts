/**
 * Wiring of the preference losses: one contribution per loss, each with its options schema and
 * the factory that makes it, bound to the PreferenceLoss contract under its name by
 * definePlugin. Weights belong to the run config (LossSelection.weight), not to a loss, so no
 * schema here has a weight.
 */
import { definePlugin, defineContribution } from '@userpref/core';
import { BasePreferenceLoss, BradleyTerryPreferenceLoss, ContrastivePreferenceLoss } from './losses';
import { contrastiveOptionsSchema, noOptionsSchema } from './options';

export const userprefPlugin = definePlugin('@userpref/loss-preference', [
  defineContribution({
    kind: 'loss',
    name: 'base',
    description: 'L_base = (CE(z(neg), "-") + CE(z(pos), "+")) / 2: full-vocabulary cross-entropy of the readout token at the last position, batch mean (SPEC §4).',
    optionsSchema: noOptionsSchema,
    create: () => new BasePreferenceLoss(),
  }),
  defineContribution({
    kind: 'loss',
    name: 'contrastive',
    description:
      'L_cp = -log softmax([z(pos)[+], z(neg)[+]])[0] - log softmax([z(pos)[-], z(neg)[-]])[1], batch mean (SPEC §4): "+" higher on the liked candidate, "-" higher on the disliked one.',
    optionsSchema: contrastiveOptionsSchema,
    create: (options) => new ContrastivePreferenceLoss(options),
  }),
  defineContribution({
    kind: 'loss',
    name: 'bradley-terry',
    description: '-log sigmoid(s(liked) - s(disliked)) with s = z[+] - z[-], the log-odds of the score P("+"), batch mean. Not in the paper: an alternative pairwise objective.',
    optionsSchema: noOptionsSchema,
    create: () => new BradleyTerryPreferenceLoss(),
  }),
]);

export const { contributions } = userprefPlugin;
