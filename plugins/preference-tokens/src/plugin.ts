/**
 * Wiring of the preference tokens: 'prompt' (the paper's released mechanism) and 'prompt-pool'
 * (the earlier pool with key matching), each made from its validated options and seeded from
 * the run's seed; definePlugin binds them to the PreferenceTokens contract under their names,
 * one instance per run (the backbone and the trainer share it).
 */
import { defineContribution, definePlugin } from '@userpref/core';
import { poolOptionsSchema, promptOptionsSchema } from './options';
import { PromptPoolTokens } from './pool';
import { PromptTokens } from './prompt';

export const userprefPlugin = definePlugin('@userpref/preference-tokens', [
  defineContribution({
    kind: 'tokens',
    name: 'prompt',
    description: 'A learnable (length x d_text) matrix prepended before BOS to every sequence (SPEC §5; the paper\'s released mechanism, saved as prompt_pool.pt).',
    optionsSchema: promptOptionsSchema,
    singleton: true,
    create: (options, { run, logger }) => new PromptTokens(options, run.seed, logger),
  }),
  defineContribution({
    kind: 'tokens',
    name: 'prompt-pool',
    description:
      'A pool of prompts with keys; the mean of the reference-history embeddings picks the topK prompts by cosine similarity; a pull constraint draws the chosen keys to the query (SPEC §5; the earlier, removed mechanism for group-specific tokens).',
    optionsSchema: poolOptionsSchema,
    singleton: true,
    create: (options, { run, logger }) => new PromptPoolTokens(options, run.seed, logger),
  }),
]);

export const { contributions } = userprefPlugin;
