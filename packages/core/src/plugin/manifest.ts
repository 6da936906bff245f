/**
 * The shape every userpref plugin package has. A package (in this repository or anywhere on
 * npm) exports `userprefPlugin`: the contributions it offers, each with a JSON schema of its
 * options, and one inversify ContainerModule that binds each implementation to its contract
 * symbol under the contribution's name. `definePlugin` (./define) builds both from contribution
 * definitions, so each name is written once.
 */
import type { ContainerModule, ServiceIdentifier } from 'inversify';
import { Backbone } from '../contracts/backbone';
import { PreferenceLoss } from '../contracts/loss';
import { PreferenceTokens } from '../contracts/tokens';
import { PreferenceDataset } from '../contracts/dataset';
import { ZeroShotScorer } from '../contracts/scorer';

export type ContributionKind = 'backbone' | 'loss' | 'tokens' | 'dataset' | 'scorer';

/** The contract symbol each kind of contribution binds to. */
export const ContractOf: Record<ContributionKind, ServiceIdentifier<unknown>> = {
  backbone: Backbone,
  loss: PreferenceLoss,
  tokens: PreferenceTokens,
  dataset: PreferenceDataset,
  scorer: ZeroShotScorer,
};

/** A JSON schema (draft-07 subset that ajv validates); `type: 'object'` at the top. */
export interface OptionsSchema {
  type: 'object';
  properties: Record<string, Record<string, unknown> & { description?: string; default?: unknown }>;
  required?: readonly string[];
  additionalProperties?: boolean;
  [k: string]: unknown;
}

export interface Contribution {
  readonly kind: ContributionKind;
  /** Name the config picks it by, e.g. 'contrastive'. Unique per kind within a run. */
  readonly name: string;
  readonly description: string;
  readonly optionsSchema: OptionsSchema;
}

export interface UserprefPlugin {
  /** The npm package name, for messages. */
  readonly packageName: string;
  readonly contributions: readonly Contribution[];
  readonly containerModule: ContainerModule;
}

/**
 * Validated options of one contribution are bound to this symbol under the name
 * `optionsName(kind, name)`. A plugin written with `definePlugin` / `defineContribution`
 * (./define) never names it: its factory receives the options. A plugin that writes its own
 * ContainerModule (e.g. in plain JavaScript) reads them with
 * `ctx.get(PluginOptions, { name: optionsName('loss', 'hinge') })`.
 */
export const PluginOptions = Symbol.for('userpref.PluginOptions');

export function optionsName(kind: ContributionKind, name: string): string {
  return `${kind}:${name}`;
}
