/**
 * The options schemas of the preference tokens. Each validates run configs, fills defaults and
 * documents the options; the TypeScript types and the `…_DEFAULTS` constants are derived from
 * them, so an option or a default is written once, here.
 */
import { optionDefaults, type OptionsOf } from '@userpref/core';

const initProperties = {
  init: {
    enum: ['uniform', 'normal', 'zeros'],
    default: 'uniform',
    description: "Initial values: 'uniform' draws U(0, 1) as the paper does; 'normal' draws N(0, std^2); 'zeros'.",
  },
  std: { type: 'number', minimum: 0, default: 0.02, description: "Standard deviation for init 'normal'." },
} as const;

export const promptOptionsSchema = {
  type: 'object',
  properties: {
    length: { type: 'integer', minimum: 1, default: 10, description: 'Number of preference tokens (the paper uses 10).' },
    ...initProperties,
  },
} as const;

export const poolOptionsSchema = {
  type: 'object',
  properties: {
    length: { type: 'integer', minimum: 1, default: 10, description: 'Tokens per prompt; the prepended length is topK * length.' },
    poolSize: { type: 'integer', minimum: 1, default: 10, description: 'Number of prompts in the pool.' },
    topK: { type: 'integer', minimum: 1, default: 1, description: 'Prompts selected per example (at most poolSize).' },
    keys: {
      enum: ['prompt-mean', 'learnable'],
      default: 'prompt-mean',
      description: "'prompt-mean': a prompt's key is the mean of its tokens (the original); 'learnable': a separate key per prompt.",
    },
    keyInit: {
      enum: ['same', 'uniform', 'normal', 'zeros'],
      default: 'same',
      description:
        "Initial values of learnable keys: 'same' as the prompts (init), or their own ('normal' uses std). Small centred keys ('normal') turn toward the queries that choose them within a few updates; U(0, 1) keys share one direction and turn slowly.",
    },
    query: {
      enum: ['history-mean', 'preference-direction'],
      default: 'history-mean',
      description:
        "What picks a user's prompts: 'history-mean', the mean input embedding of the reference history (the original; it is the same whichever image of each pair was liked), or 'preference-direction', the mean embedding of the liked reference images minus that of the disliked ones (the user's taste, so that users who share one pick the same prompts).",
    },
    reseatAfter: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description:
        "Starved-prompt re-seating during training (0: off; needs keys 'learnable'): once a prompt has been seated for this many training examples and was chosen for less than reseatBelow of its even share (topK / poolSize of the choices), its key is moved onto the query of the current batch that its own chosen key serves worst, as k-means and VQ codebooks revive dead centres. Evaluation never re-seats.",
    },
    reseatBelow: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      default: 0.5,
      description: 'The share of its even share below which a prompt counts as starved (see reseatAfter).',
    },
    seedKeysAfter: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description:
        "Seating the learnable keys from data (0: off; needs keys 'learnable'; at least poolSize): the first this many non-zero training queries are kept, and when they are all in, the keys are moved onto the centres of a spherical k-means (k-means++ seeding, best of 8 runs) of them, at the pool's mean key length, as VQ codebooks are initialised by k-means on the first batch. Until then prompts are picked by the initial keys. Evaluation never seats.",
    },
    pullCoefficient: {
      type: 'number',
      minimum: 0,
      default: 0.1,
      description: 'Weight of the pull constraint: coefficient * batch mean of sum over selected prompts of (1 - cos(query, key)).',
    },
    ...initProperties,
  },
} as const;

/** `{ length, init, std }`: rows of the prompt matrix P, and how P starts. */
export type PromptOptions = OptionsOf<typeof promptOptionsSchema>;
/** `{ length, poolSize, topK, keys, keyInit, query, reseatAfter, reseatBelow, seedKeysAfter, pullCoefficient, init, std }`. */
export type PoolOptions = OptionsOf<typeof poolOptionsSchema>;
/** How preference tokens start: `init` ('uniform' U(0, 1) as the paper, 'normal' N(0, std^2), 'zeros') and `std`. */
export type InitOptions = Pick<PromptOptions, 'init' | 'std'>;
export type TokenInit = InitOptions['init'];
/** 'prompt-mean': a prompt's key is the mean of its tokens; 'learnable': a separate [poolSize, d] variable. */
export type KeyMode = PoolOptions['keys'];
/** Which PrefixContext vector is the pool's query. */
export type PoolQuery = PoolOptions['query'];

/** The paper's prompt: 10 tokens, U(0, 1). */
export const PROMPT_DEFAULTS = optionDefaults(promptOptionsSchema) as PromptOptions;
export const POOL_DEFAULTS = optionDefaults(poolOptionsSchema) as PoolOptions;
