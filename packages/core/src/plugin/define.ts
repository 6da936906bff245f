/**
 * A contribution named once. `defineContribution` states what a plugin offers (kind, name,
 * description, options schema) together with the function that makes the implementation from
 * the validated options; `definePlugin` turns a list of them into the `UserprefPlugin` a package
 * exports: the `contributions` core lists and validates against, and the ContainerModule that
 * binds each one to its contract under the same name (in the spirit of Theia's
 * `bindContributionProvider`: one call binds a point). The option type comes from the schema
 * (json-schema-to-ts), so it is never kept by hand beside it.
 *
 *   export const userprefPlugin = definePlugin('@userpref/loss-margin', [
 *     defineContribution({
 *       kind: 'loss',
 *       name: 'margin',
 *       description: '…',
 *       optionsSchema: { type: 'object', properties: { margin: { type: 'number', default: 1 } } },
 *       create: (options) => new MarginLoss(options), // options: { margin: number }
 *     }),
 *   ]);
 */
import { ContainerModule, type Bind, type ResolutionContext } from 'inversify';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { Backbone } from '../contracts/backbone';
import type { PreferenceDataset } from '../contracts/dataset';
import { Logger } from '../contracts/logger';
import type { PreferenceLoss } from '../contracts/loss';
import type { ZeroShotScorer } from '../contracts/scorer';
import type { PreferenceTokens } from '../contracts/tokens';
import { RunContext } from './assembly';
import { ContractOf, PluginOptions, optionsName, type Contribution, type ContributionKind, type OptionsSchema, type UserprefPlugin } from './manifest';
import { validateOptions } from './validate';

/** The interface an implementation of each kind of contribution has (what `ContractOf[kind]` names). */
export interface ContractTypes {
  backbone: Backbone;
  loss: PreferenceLoss;
  tokens: PreferenceTokens;
  dataset: PreferenceDataset;
  scorer: ZeroShotScorer;
}

/** A JSON schema of options that both core (`OptionsSchema`) and json-schema-to-ts read. */
export type OptionsSchemaOf = OptionsSchema & JSONSchema;

/**
 * Options as a factory receives them, after validation: the type the schema describes, where a
 * property with a `default` is present (ajv fills it in), so only properties without a default
 * and not `required` are optional. Declare a schema kept in a variable `as const`, or the type
 * widens to `Record<string, unknown>`-like shapes.
 */
export type OptionsOf<S extends JSONSchema> = FromSchema<S>;

/** Options as a user writes them, before validation: properties with a default may be left out. */
export type OptionsInputOf<S extends JSONSchema> = FromSchema<S, { keepDefaultedPropertiesOptional: true }>;

/** What a factory may use besides its options. Resolved only when read. */
export interface ContributionServices {
  /** The run's seed and the folder relative paths resolve against. */
  readonly run: RunContext;
  readonly logger: Logger;
}

export interface ContributionDefinition<K extends ContributionKind = ContributionKind, I = Record<string, unknown>> extends Contribution {
  readonly kind: K;
  /** One instance per container (e.g. a dataset or tokens shared by trainer and evaluator) instead of one per request. */
  readonly singleton: boolean;
  /**
   * Validates `options` against the schema (unknown keys rejected, defaults filled in, a
   * ConfigError naming the contribution and the option otherwise) and makes the implementation.
   * The container binding goes through here; so can a test or a tool, with no container.
   */
  create(options?: I, services?: Partial<ContributionServices>): ContractTypes[K];
}

export interface ContributionSpec<K extends ContributionKind, S extends OptionsSchemaOf, O> {
  readonly kind: K;
  /** Name the config picks it by, e.g. 'contrastive'. Spelled here only. */
  readonly name: string;
  readonly description: string;
  readonly optionsSchema: S;
  /** Bind in singleton scope (default false: a new instance per request, as a plain binding). */
  readonly singleton?: boolean;
  /** Makes the implementation from validated options (defaults filled in); `O` is `OptionsOf<S>`. */
  readonly create: (options: O, services: ContributionServices) => ContractTypes[K];
}

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

/** Services that throw, naming the contribution, when a factory reads one the caller did not give. */
function servicesFrom(where: string, given: Partial<ContributionServices>): ContributionServices {
  const need = <T>(key: keyof ContributionServices, v: T | undefined): T => {
    if (v === undefined) throw new Error(`${where} needs services.${key}, which was not given`);
    return v;
  };
  return {
    get run() {
      return need('run', given.run);
    },
    get logger() {
      return need('logger', given.logger);
    },
  };
}

/** Services read from the container when the factory asks for them (so a loss needs no RunContext bound). */
function servicesFromContainer(ctx: ResolutionContext): ContributionServices {
  return {
    get run() {
      return ctx.get<RunContext>(RunContext);
    },
    get logger() {
      return ctx.get<Logger>(Logger);
    },
  };
}

/**
 * One contribution: its metadata (what core lists, validates against and documents) and its
 * factory, under one name. `const S` keeps a schema written inline literal, so `create`'s
 * `options` has the schema's type without `as const` (a schema kept in a variable needs it).
 * `O` and `I` are not for callers to give: as defaults (not inferred) they are computed once S is
 * known, which keeps the compiler from expanding FromSchema over every possible schema.
 */
export function defineContribution<K extends ContributionKind, const S extends OptionsSchemaOf, O = OptionsOf<S>, I = OptionsInputOf<S>>(
  spec: ContributionSpec<K, S, O>,
): ContributionDefinition<K, I> {
  const { kind, name, description, optionsSchema } = spec;
  // Inside, options are the validated object; their schema type is the plugin author's.
  const make = spec.create as unknown as (options: Record<string, unknown>, services: ContributionServices) => ContractTypes[K];
  if (!(kind in ContractOf)) throw new Error(`defineContribution: kind '${String(kind)}' is not one of ${Object.keys(ContractOf).join(', ')}`);
  if (typeof name !== 'string' || !NAME.test(name)) throw new Error(`defineContribution: ${kind} name '${name}' must be lower-case letters, digits, '.', '_' or '-'`);
  if (!optionsSchema || optionsSchema.type !== 'object' || typeof optionsSchema.properties !== 'object') {
    throw new Error(`defineContribution: ${kind} '${name}': optionsSchema must be { type: 'object', properties: {...} }`);
  }
  const where = `${kind} '${name}'`;
  return {
    kind,
    name,
    description,
    optionsSchema,
    singleton: spec.singleton ?? false,
    create(options?: unknown, services: Partial<ContributionServices> = {}) {
      return make(validateOptions(where, optionsSchema, options), servicesFrom(where, services));
    },
  };
}

/**
 * Binds a contribution to its contract under its name. Its options are the ones the assembly
 * validated and bound to `PluginOptions` under `optionsName(kind, name)`; they go through
 * `create`, so the factory sees validated options whoever bound them.
 */
export function bindContribution(bind: Bind, definition: ContributionDefinition): void {
  const { kind, name } = definition;
  const binding = bind<ContractTypes[typeof kind]>(ContractOf[kind] as symbol).toDynamicValue((ctx) =>
    definition.create(ctx.get<Record<string, unknown>>(PluginOptions, { name: optionsName(kind, name), optional: true }), servicesFromContainer(ctx)),
  );
  (definition.singleton ? binding.inSingletonScope() : binding).whenNamed(name);
}

/** Metadata only, as core and the tools read it (no factory). */
function metadataOf(d: ContributionDefinition): Contribution {
  return { kind: d.kind, name: d.name, description: d.description, optionsSchema: d.optionsSchema };
}

/** A userpref plugin whose contributions carry their factories too. */
export interface DefinedPlugin extends UserprefPlugin {
  readonly definitions: readonly ContributionDefinition[];
}

/**
 * The `userprefPlugin` of a package from its contribution definitions: the contributions (kind,
 * name, description, schema) and one ContainerModule binding each to its contract under its
 * name. A kind and name may appear once.
 */
export function definePlugin(packageName: string, definitions: readonly ContributionDefinition[]): DefinedPlugin {
  const seen = new Set<string>();
  for (const d of definitions) {
    const key = optionsName(d.kind, d.name);
    if (seen.has(key)) throw new Error(`definePlugin('${packageName}'): ${d.kind} '${d.name}' is defined twice`);
    seen.add(key);
  }
  return {
    packageName,
    contributions: definitions.map(metadataOf),
    definitions,
    containerModule: new ContainerModule(({ bind }) => {
      for (const d of definitions) bindContribution(bind, d);
    }),
  };
}
