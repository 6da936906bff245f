/**
 * The workspace's own packages, by npm name: where each lives and its version. The builder needs
 * them to turn `"@userpref/core": "*"` into a version a registry can resolve and to compile a
 * package against the built declarations of the packages it depends on.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface WorkspacePackage {
  readonly name: string;
  readonly version: string;
  /** Folder relative to the workspace root, with forward slashes, e.g. `plugins/loss-preference`. */
  readonly root: string;
}

export interface SourcePackageJson {
  name: string;
  version: string;
  description?: string;
  license?: string;
  private?: boolean;
  keywords?: string[];
  author?: unknown;
  repository?: unknown;
  homepage?: string;
  bugs?: unknown;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  workspaces?: string[];
  [key: string]: unknown;
}

export function readJson<T>(file: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Expands the root package.json `workspaces` globs. Only the two forms npm workspaces use here
 * are supported (`dir/*` and a plain folder); anything else is an error rather than a silent miss.
 */
export function listWorkspacePackages(workspaceRoot: string): Map<string, WorkspacePackage> {
  const rootJson = readJson<SourcePackageJson>(path.join(workspaceRoot, 'package.json'));
  const out = new Map<string, WorkspacePackage>();
  for (const pattern of rootJson.workspaces ?? []) {
    let folders: string[];
    if (pattern.endsWith('/*') && !pattern.slice(0, -2).includes('*')) {
      const parent = path.join(workspaceRoot, pattern.slice(0, -2));
      folders = fs.existsSync(parent)
        ? fs
            .readdirSync(parent, { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .map((d) => `${pattern.slice(0, -2)}/${d.name}`)
        : [];
    } else if (!pattern.includes('*')) {
      folders = [pattern];
    } else {
      throw new Error(`package.json workspaces: pattern '${pattern}' is not supported by the publish tools (use 'dir/*' or a folder)`);
    }
    for (const root of folders) {
      const pj = path.join(workspaceRoot, root, 'package.json');
      if (!fs.existsSync(pj)) continue;
      const json = readJson<SourcePackageJson>(pj);
      if (!json.name || !json.version) throw new Error(`${pj}: a workspace package needs 'name' and 'version'`);
      out.set(json.name, { name: json.name, version: json.version, root });
    }
  }
  return out;
}

/** The version of an installed third-party package, as seen from `fromDir`. */
export function installedVersion(name: string, fromDir: string): string | undefined {
  try {
    const file = require.resolve(`${name}/package.json`, { paths: [fromDir] });
    return readJson<{ version?: string }>(file).version;
  } catch {
    return undefined;
  }
}
