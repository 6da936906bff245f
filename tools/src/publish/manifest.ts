/**
 * The package.json of a published package, derived from the source one. In the workspace a
 * package points `main` at its TypeScript source and names its siblings with "*"; a published
 * package points at compiled JavaScript and names versions a registry can resolve. A plugin
 * peers on @userpref/core, so the application and all its plugins share one core (one set of
 * contract symbols, one inversify).
 */
import type { SourcePackageJson, WorkspacePackage } from './workspace';
import { installedVersion } from './workspace';

export const CORE_PACKAGE = '@userpref/core';

export interface PublishedPackageJson {
  name: string;
  version: string;
  description: string;
  license: string;
  keywords?: string[];
  main: string;
  types: string;
  exports: Record<string, unknown>;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  optionalDependencies?: Record<string, string>;
  userpref?: { contributions: Array<{ kind: string; name: string }> };
  [key: string]: unknown;
}

export interface ManifestInput {
  source: SourcePackageJson;
  /** Where the source package.json lives (for error messages). */
  sourceFile: string;
  /** The package's folder, to resolve installed versions of "*" third-party dependencies. */
  packageDir: string;
  /** Workspace root package.json (license/engines fallbacks). */
  root: SourcePackageJson;
  workspace: ReadonlyMap<string, WorkspacePackage>;
  /** True when the package exports `userprefPlugin`, or lives under plugins/. */
  isPlugin: boolean;
  contributions?: ReadonlyArray<{ kind: string; name: string }>;
}

const CARRIED = ['private', 'keywords', 'author', 'repository', 'homepage', 'bugs', 'contributors', 'funding'] as const;

function concreteRange(name: string, range: string, input: ManifestInput): string {
  const ws = input.workspace.get(name);
  if (ws) {
    if (range !== '*' && range !== '' && !range.startsWith('workspace:')) return range;
    return `^${ws.version}`;
  }
  if (range === '*' || range === '' || range === 'latest') {
    const v = installedVersion(name, input.packageDir);
    if (!v) throw new Error(`${input.sourceFile}: dependency '${name}' is "${range}" and no installed copy gives a version to publish; write a range`);
    return `^${v}`;
  }
  if (range.startsWith('file:') || range.startsWith('link:') || range.startsWith('workspace:')) {
    throw new Error(`${input.sourceFile}: dependency '${name}' is '${range}', which a registry cannot resolve`);
  }
  return range;
}

function sorted(record: Record<string, string>): Record<string, string> | undefined {
  const keys = Object.keys(record).sort();
  return keys.length ? Object.fromEntries(keys.map((k) => [k, record[k]])) : undefined;
}

export function publishedManifest(input: ManifestInput): PublishedPackageJson {
  const src = input.source;
  if (!src.description) throw new Error(`${input.sourceFile}: 'description' is required to publish (it opens the README)`);
  const dependencies: Record<string, string> = {};
  const peerDependencies: Record<string, string> = {};
  for (const [name, range] of Object.entries(src.dependencies ?? {})) {
    const concrete = concreteRange(name, range, input);
    if (name === CORE_PACKAGE && input.isPlugin) peerDependencies[name] = concrete;
    else dependencies[name] = concrete;
  }
  for (const [name, range] of Object.entries(src.peerDependencies ?? {})) {
    peerDependencies[name] = concreteRange(name, range, input);
  }
  const optionalDependencies: Record<string, string> = {};
  for (const [name, range] of Object.entries(src.optionalDependencies ?? {})) optionalDependencies[name] = concreteRange(name, range, input);

  const out: PublishedPackageJson = {
    name: src.name,
    version: src.version,
    description: src.description,
    license: src.license ?? input.root.license ?? 'UNLICENSED',
    main: './index.js',
    types: './index.d.ts',
    exports: {
      '.': { types: './index.d.ts', default: './index.js' },
      './package.json': './package.json',
    },
  };
  const carried = out as Record<string, unknown>;
  for (const key of CARRIED) if (src[key] !== undefined) carried[key] = src[key];
  if (input.isPlugin) {
    const keywords: string[] = [...(Array.isArray(src.keywords) ? src.keywords : []), 'userpref', 'userpref-plugin'];
    out.keywords = [...new Set(keywords)];
  }
  const engines = src.engines ?? input.root.engines;
  if (engines) out.engines = engines;
  const deps = sorted(dependencies);
  if (deps) out.dependencies = deps;
  const peers = sorted(peerDependencies);
  if (peers) out.peerDependencies = peers;
  if (src.peerDependenciesMeta && Object.keys(src.peerDependenciesMeta).length) out.peerDependenciesMeta = src.peerDependenciesMeta;
  const optional = sorted(optionalDependencies);
  if (optional) out.optionalDependencies = optional;
  if (input.contributions?.length) out.userpref = { contributions: input.contributions.map((c) => ({ kind: c.kind, name: c.name })) };
  // Conventional field order, so the file reads like a hand-written package.json.
  const rank = (k: string) => (FIELD_ORDER.indexOf(k) + FIELD_ORDER.length + 1) % (FIELD_ORDER.length + 1);
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => rank(a) - rank(b))) as PublishedPackageJson;
}

const FIELD_ORDER = ['name', 'version', 'private', 'description', 'keywords', 'license', 'author', 'contributors', 'repository', 'homepage', 'bugs', 'funding', 'main', 'types', 'exports', 'engines'];

/** Every package name a published manifest lets its code import. */
export function declaredPackages(m: PublishedPackageJson): Set<string> {
  return new Set([...Object.keys(m.dependencies ?? {}), ...Object.keys(m.peerDependencies ?? {}), ...Object.keys(m.optionalDependencies ?? {})]);
}
