/**
 * The options schemas of the losses. Each schema validates run configs, fills defaults and
 * documents the options; the TypeScript type of the options is derived from it, never written
 * beside it.
 */
import type { OptionsOf } from '@userpref/core';

export const contrastiveOptionsSchema = {
  type: 'object',
  properties: {
    temperature: {
      type: 'number',
      exclusiveMinimum: 0,
      default: 1,
      description: 'Both logit pairs are divided by this before the two-way softmax. 1 is the paper (no temperature).',
    },
  },
} as const;

/** `{ temperature: number }`: divides both logit pairs before the two-way softmax; 1 is the paper's loss. */
export type ContrastiveOptions = OptionsOf<typeof contrastiveOptionsSchema>;

/** The base and Bradley-Terry losses take no options. */
export const noOptionsSchema = { type: 'object', properties: {} } as const;
