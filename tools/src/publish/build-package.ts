/**
 * Builds one workspace package into a folder `npm pack` / `npm publish` can take as is:
 * compiled CommonJS + .d.ts, a package.json a registry can resolve, a README generated from the
 * package's own declarations, and the licence text. Every check that would otherwise surface
 * only after publishing (an undeclared import, a plugin that does not export `userprefPlugin`, a
 * contribution without a schema) fails the build here, naming the file at fault.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { UserprefPlugin } from '@userpref/core';
import { compilePackage } from './compile';
import { collectImports, undeclaredImports } from './imports';
import { CORE_PACKAGE, declaredPackages, publishedManifest, type PublishedPackageJson } from './manifest';
import { renderReadme } from './readme';
import { listWorkspacePackages, readJson, type SourcePackageJson } from './workspace';

export interface BuildOptions {
  workspaceRoot: string;
  /** Package folder relative to the workspace root, e.g. `plugins/loss-preference`. */
  projectRoot: string;
  /** Where built packages go (absolute); the package lands in `<distRoot>/<projectRoot>`. Default `<workspaceRoot>/dist`. */
  distRoot?: string;
  log?: (line: string) => void;
}

export interface BuildResult {
  outDir: string;
  manifest: PublishedPackageJson;
  /** Compiled files and copied assets, relative to outDir. */
  files: string[];
  contributions: Array<{ kind: string; name: string }>;
}

export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildError';
  }
}

const LICENSE_TEXT = path.join(__dirname, 'LICENSE.txt');
const KINDS = new Set(['backbone', 'loss', 'tokens', 'dataset', 'scorer']);

function checkPlugin(plugin: UserprefPlugin, source: SourcePackageJson, where: string): void {
  if (plugin.packageName !== source.name) {
    throw new BuildError(`${where}: userprefPlugin.packageName is '${plugin.packageName}' but package.json names the package '${source.name}'; error messages would name the wrong package`);
  }
  if (!plugin.contributions.length) throw new BuildError(`${where}: userprefPlugin has no contributions`);
  const seen = new Set<string>();
  plugin.contributions.forEach((c, i) => {
    const at = `${where}: userprefPlugin.contributions[${i}]`;
    if (!KINDS.has(c.kind)) throw new BuildError(`${at}: kind '${c.kind}' is not one of ${[...KINDS].join(', ')}`);
    if (typeof c.name !== 'string' || !c.name) throw new BuildError(`${at}: 'name' must be a non-empty string`);
    if (seen.has(`${c.kind}:${c.name}`)) throw new BuildError(`${at}: ${c.kind} '${c.name}' is declared twice`);
    seen.add(`${c.kind}:${c.name}`);
    if (typeof c.description !== 'string' || !c.description) throw new BuildError(`${at} (${c.kind} '${c.name}'): 'description' is required (it goes into the README)`);
    if (!c.optionsSchema || c.optionsSchema.type !== 'object' || typeof c.optionsSchema.properties !== 'object') {
      throw new BuildError(`${at} (${c.kind} '${c.name}'): optionsSchema must be { type: 'object', properties: {...} }`);
    }
  });
}

/** Requires the built entry point fresh (a rebuild in the same process must not see the old one). */
function loadBuilt(entry: string, outDir: string): Record<string, unknown> {
  for (const key of Object.keys(require.cache)) if (key.startsWith(outDir + path.sep)) delete require.cache[key];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(entry) as Record<string, unknown>;
}

export function buildPackage(opts: BuildOptions): BuildResult {
  const started = Date.now();
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const workspaceRoot = path.resolve(opts.workspaceRoot);
  const projectRoot = opts.projectRoot.split(path.sep).join('/').replace(/\/+$/, '');
  const packageDir = path.join(workspaceRoot, projectRoot);
  const distRoot = path.resolve(opts.distRoot ?? path.join(workspaceRoot, 'dist'));
  const outDir = path.join(distRoot, projectRoot);
  const sourceFile = path.join(packageDir, 'package.json');
  const source = readJson<SourcePackageJson>(sourceFile);
  const root = readJson<SourcePackageJson>(path.join(workspaceRoot, 'package.json'));
  const workspace = listWorkspacePackages(workspaceRoot);

  // Sibling packages are compiled against their built declarations (built first by ^build).
  const builtDeclarations: Record<string, string> = {};
  for (const name of Object.keys({ ...source.dependencies, ...source.peerDependencies })) {
    const ws = workspace.get(name);
    if (!ws) continue;
    const dts = path.join(distRoot, ws.root, 'index.d.ts');
    if (!fs.existsSync(dts)) {
      throw new BuildError(`${projectRoot} depends on ${name}, which is not built yet (${path.relative(workspaceRoot, dts)} is missing): build it first, e.g. \`npx nx run ${source.name}:build\` builds dependencies first`);
    }
    builtDeclarations[name] = dts;
  }
  log(`build ${source.name}: compiling ${projectRoot}/src -> ${path.relative(workspaceRoot, outDir) || outDir}`);
  const compiled = compilePackage({ workspaceRoot, packageDir, outDir, builtDeclarations });
  log(`build ${source.name}: ${compiled.files.length} files emitted, ${compiled.assets.length} assets copied (${((Date.now() - started) / 1000).toFixed(1)} s)`);

  const underPlugins = projectRoot.startsWith('plugins/');
  const manifestFor = (isPlugin: boolean, contributions?: Array<{ kind: string; name: string }>) =>
    publishedManifest({ source, sourceFile, packageDir, root, workspace, isPlugin, contributions });

  const missing = undeclaredImports(collectImports(outDir), source.name, declaredPackages(manifestFor(underPlugins)));
  if (missing.length) {
    const lines = missing.map((s) => `  ${s.file}:${s.line} imports '${s.specifier}'`);
    const names = [...new Set(missing.map((s) => s.packageName))];
    throw new BuildError(`${projectRoot}: the built code imports ${names.map((n) => `'${n}'`).join(', ')} but ${path.relative(workspaceRoot, sourceFile)} does not declare ${names.length > 1 ? 'them' : 'it'} in dependencies or peerDependencies:\n${lines.join('\n')}`);
  }

  const entry = path.join(outDir, 'index.js');
  let mod: Record<string, unknown>;
  try {
    mod = loadBuilt(entry, outDir);
  } catch (e) {
    throw new BuildError(`${projectRoot}: the built ${path.relative(workspaceRoot, entry)} fails to load: ${(e as Error).stack ?? e}`);
  }
  const plugin = mod.userprefPlugin as UserprefPlugin | undefined;
  if (plugin !== undefined) checkPlugin(plugin, source, `${projectRoot}/src/index.ts`);
  else if (underPlugins) throw new BuildError(`${projectRoot}/src/index.ts must export 'userprefPlugin' (packages under plugins/ are userpref plugins)`);
  const contributions = plugin ? plugin.contributions.map((c) => ({ kind: c.kind, name: c.name })) : [];
  const manifest = manifestFor(!!plugin || underPlugins, contributions);

  fs.writeFileSync(path.join(outDir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  const peers = Object.keys(manifest.peerDependencies ?? {}).filter((p) => p === CORE_PACKAGE || !manifest.peerDependenciesMeta?.[p]?.optional);
  const readme = renderReadme({
    name: manifest.name,
    description: manifest.description,
    license: manifest.license,
    peers,
    plugin,
    exportedNames: plugin ? undefined : Object.keys(mod).filter((k) => k !== '__esModule' && k !== 'default').sort(),
  });
  fs.writeFileSync(path.join(outDir, 'README.md'), readme);
  const ownLicense = ['LICENSE', 'LICENSE.txt', 'LICENSE.md'].map((f) => path.join(packageDir, f)).find((f) => fs.existsSync(f));
  if (ownLicense) fs.copyFileSync(ownLicense, path.join(outDir, 'LICENSE'));
  else if (manifest.license === 'Apache-2.0') fs.copyFileSync(LICENSE_TEXT, path.join(outDir, 'LICENSE'));
  else throw new BuildError(`${projectRoot}: license is '${manifest.license}' and the package has no LICENSE file to publish (only the Apache-2.0 text is provided by the tools)`);

  const what = plugin ? `plugin with ${contributions.map((c) => `${c.kind} '${c.name}'`).join(', ')}` : 'library';
  log(`build ${source.name}: wrote ${path.relative(workspaceRoot, outDir) || outDir} (${what}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { outDir, manifest, files: [...compiled.files, ...compiled.assets], contributions };
}
