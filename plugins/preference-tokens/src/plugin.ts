/**
 * Wiring of the preference tokens: 'prompt' (the paper's released mechanism) and 'prompt-pool'
 * (the earlier pool with key matching), each bound to the PreferenceTokens contract under its
 * name, seeded from the run's seed.
 */
import { ContainerModule, inject, injectable, named } from 'inversify';
import { Logger, PluginOptions, PreferenceTokens, RunContext, optionsName, type Contribution, type OptionsSchema, type UserprefPlugin } from '@userpref/core';
import { POOL_DEFAULTS, PromptPoolTokens, type PoolOptions } from './pool';
import { PROMPT_DEFAULTS, PromptTokens, type PromptOptions } from './prompt';

const initProperties: OptionsSchema['properties'] = {
  init: {
    enum: ['uniform', 'normal', 'zeros'],
    default: PROMPT_DEFAULTS.init,
    description: "Initial values: 'uniform' draws U(0, 1) as the paper does; 'normal' draws N(0, std^2); 'zeros'.",
  },
  std: { type: 'number', minimum: 0, default: PROMPT_DEFAULTS.std, description: "Standard deviation for init 'normal'." },
};

export const contributions: Contribution[] = [
  {
    kind: 'tokens',
    name: 'prompt',
    description: 'A learnable (length x d_text) matrix prepended before BOS to every sequence (SPEC §5; the paper\'s released mechanism, saved as prompt_pool.pt).',
    optionsSchema: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 1, default: PROMPT_DEFAULTS.length, description: 'Number of preference tokens (the paper uses 10).' },
        ...initProperties,
      },
    },
  },
  {
    kind: 'tokens',
    name: 'prompt-pool',
    description:
      'A pool of prompts with keys; the mean of the reference-history embeddings picks the topK prompts by cosine similarity; a pull constraint draws the chosen keys to the query (SPEC §5; the earlier, removed mechanism for group-specific tokens).',
    optionsSchema: {
      type: 'object',
      properties: {
        length: { type: 'integer', minimum: 1, default: POOL_DEFAULTS.length, description: 'Tokens per prompt; the prepended length is topK * length.' },
        poolSize: { type: 'integer', minimum: 1, default: POOL_DEFAULTS.poolSize, description: 'Number of prompts in the pool.' },
        topK: { type: 'integer', minimum: 1, default: POOL_DEFAULTS.topK, description: 'Prompts selected per example (at most poolSize).' },
        keys: {
          enum: ['prompt-mean', 'learnable'],
          default: POOL_DEFAULTS.keys,
          description: "'prompt-mean': a prompt's key is the mean of its tokens (the original); 'learnable': a separate key per prompt.",
        },
        pullCoefficient: {
          type: 'number',
          minimum: 0,
          default: POOL_DEFAULTS.pullCoefficient,
          description: 'Weight of the pull constraint: coefficient * batch mean of sum over selected prompts of (1 - cos(query, key)).',
        },
        ...initProperties,
      },
    },
  },
];

@injectable()
class PromptTokensFromOptions extends PromptTokens {
  constructor(
    @inject(PluginOptions) @named(optionsName('tokens', 'prompt')) options: PromptOptions,
    @inject(RunContext) run: RunContext,
    @inject(Logger) logger: Logger,
  ) {
    super(options, run.seed, logger);
  }
}

@injectable()
class PromptPoolTokensFromOptions extends PromptPoolTokens {
  constructor(
    @inject(PluginOptions) @named(optionsName('tokens', 'prompt-pool')) options: PoolOptions,
    @inject(RunContext) run: RunContext,
    @inject(Logger) logger: Logger,
  ) {
    super(options, run.seed, logger);
  }
}

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/preference-tokens',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    bind<PreferenceTokens>(PreferenceTokens).to(PromptTokensFromOptions).inSingletonScope().whenNamed('prompt');
    bind<PreferenceTokens>(PreferenceTokens).to(PromptPoolTokensFromOptions).inSingletonScope().whenNamed('prompt-pool');
  }),
};
