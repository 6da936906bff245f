/**
 * `nx g @userpref/tools:plugin <name> --kind loss|backbone|tokens|dataset|scorer`: a new research
 * plugin as its own package, with a small implementation of the contract that already works and
 * a test that already passes, so the first edit a researcher makes is to the idea itself. Core is
 * never edited: plugins are found by name at run time.
 */
import * as path from 'path';
import { generateFiles, installPackagesTask, joinPathFragments, names, offsetFromRoot, readJson, writeJson, type GeneratorCallback, type Tree } from '@nx/devkit';

export type PluginKind = 'loss' | 'backbone' | 'tokens' | 'dataset' | 'scorer';

export interface PluginGeneratorSchema {
  name: string;
  kind: PluginKind;
  contribution?: string;
  packageName?: string;
  description?: string;
  directory?: string;
  skipInstall?: boolean;
}

const KEBAB = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/** Per kind: the class-name suffix, the example's default description, extra dependencies (tfjs: the kind computes with tensors). */
const KINDS: Record<PluginKind, { suffix: string; description: string; safetensors: boolean; tfjs?: false }> = {
  loss: {
    suffix: 'Loss',
    description: 'A margin (hinge) loss on the preference log-odds gap between the liked and the disliked candidate.',
    safetensors: false,
  },
  backbone: {
    suffix: 'Backbone',
    description: 'A linear scorer over image colour statistics that implements the Backbone contract: a tiny stand-in for a multimodal LLM.',
    safetensors: true,
  },
  tokens: {
    suffix: 'PreferenceTokens',
    description: 'Zero-initialised learnable preference tokens prepended before BOS.',
    safetensors: true,
  },
  dataset: {
    suffix: 'PreferenceDataset',
    description: 'An in-memory synthetic preference dataset: each user prefers images with more of one colour channel.',
    safetensors: false,
  },
  scorer: {
    suffix: 'Scorer',
    description: "A zero-shot scorer (prompt, image -> score) that needs no weights: how close the image's mean colour is to the colours the prompt names.",
    safetensors: false,
    tfjs: false,
  },
};

export interface NormalizedOptions {
  name: string;
  kind: PluginKind;
  contribution: string;
  packageName: string;
  description: string;
  projectRoot: string;
  /** e.g. MarginLoss */
  className: string;
  /** e.g. margin-loss (src/<fileName>.ts, test/<fileName>.spec.ts) */
  fileName: string;
  skipInstall: boolean;
}

export function normalizeOptions(schema: PluginGeneratorSchema): NormalizedOptions {
  const name = schema.name;
  if (typeof name !== 'string' || !KEBAB.test(name)) throw new Error(`plugin name '${name}' must be kebab-case (lower-case letters, digits and single dashes, starting with a letter), e.g. loss-margin`);
  const kind = schema.kind;
  if (!(kind in KINDS)) throw new Error(`--kind '${kind}' is not one of ${Object.keys(KINDS).join(', ')}`);
  const contribution = schema.contribution ?? (name.startsWith(`${kind}-`) && name.length > kind.length + 1 ? name.slice(kind.length + 1) : name);
  if (!KEBAB.test(contribution)) throw new Error(`--contribution '${contribution}' must be kebab-case, e.g. margin`);
  const packageName = schema.packageName ?? `@userpref/${name}`;
  if (!/^(@[a-z0-9][a-z0-9._-]*\/)?[a-z0-9][a-z0-9._-]*$/.test(packageName)) throw new Error(`--packageName '${packageName}' is not a valid npm package name`);
  const directory = (schema.directory ?? 'plugins').replace(/\/+$/, '');
  const base = names(contribution).className;
  const suffix = KINDS[kind].suffix;
  return {
    name,
    kind,
    contribution,
    packageName,
    description: schema.description ?? KINDS[kind].description,
    projectRoot: joinPathFragments(directory, name),
    className: base.endsWith(suffix) ? base : `${base}${suffix}`,
    fileName: `${contribution}-${kind}`,
    skipInstall: schema.skipInstall ?? false,
  };
}

/**
 * Version range of tfjs-core: the one core itself declares, so the plugin and the core it plugs
 * into agree. (A plugin needs no inversify of its own: core's definePlugin builds its
 * ContainerModule.) Read from the workspace tree when it has core, else from the core
 * installed next to these tools.
 */
function coreDependencyRanges(tree: Tree): Record<string, string> {
  const corePath = 'packages/core/package.json';
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const core: { dependencies?: Record<string, string> } = tree.exists(corePath) ? readJson(tree, corePath) : require('@userpref/core/package.json');
  const deps = core.dependencies ?? {};
  const pick = (n: string) => {
    const v = deps[n];
    if (!v) throw new Error(`@userpref/core's package.json does not declare ${n}; the plugin template needs its version`);
    return v;
  };
  return { '@tensorflow/tfjs-core': pick('@tensorflow/tfjs-core') };
}

export async function pluginGenerator(tree: Tree, schema: PluginGeneratorSchema): Promise<GeneratorCallback> {
  const o = normalizeOptions(schema);
  if (tree.exists(o.projectRoot)) throw new Error(`${o.projectRoot} already exists; pick another name or remove it first`);
  const ranges = coreDependencyRanges(tree);
  const dependencies: Record<string, string> = { '@userpref/core': '*', ...ranges };
  if (KINDS[o.kind].tfjs === false) delete dependencies['@tensorflow/tfjs-core'];
  if (KINDS[o.kind].safetensors) dependencies['@userpref/safetensors'] = '*';
  writeJson(tree, joinPathFragments(o.projectRoot, 'package.json'), {
    name: o.packageName,
    version: '0.1.0',
    description: o.description,
    license: 'Apache-2.0',
    main: './src/index.ts',
    types: './src/index.ts',
    dependencies: Object.fromEntries(Object.entries(dependencies).sort(([a], [b]) => a.localeCompare(b))),
    devDependencies: { '@userpref/runtime': '*' },
  });
  const substitutions = {
    ...o,
    offset: offsetFromRoot(o.projectRoot),
    // JSON-quoted description for use inside TypeScript string literals.
    descriptionLiteral: JSON.stringify(o.description),
    // e.g. marginOptionsSchema: the options schema, exported beside the implementation.
    schemaName: `${names(o.contribution).propertyName}OptionsSchema`,
    tmpl: '',
  };
  generateFiles(tree, path.join(__dirname, 'files', 'common'), o.projectRoot, substitutions);
  generateFiles(tree, path.join(__dirname, 'files', o.kind), o.projectRoot, substitutions);
  return () => {
    if (o.skipInstall) return;
    // Links the new workspace package into node_modules (and records it in the lockfile) so a
    // run config can name it by package.
    installPackagesTask(tree, true);
  };
}

export default pluginGenerator;
