/**
 * Nx plugin of this workspace: every package under packages/ or plugins/ that has a
 * src/index.ts gets a `build` target inferred from that file, instead of a project.json block
 * copied into each package. The target runs the publish builder (tools/src/publish), which
 * writes an npm-ready package to dist/<projectRoot>.
 *
 * Registered in nx.json:
 *   { "plugin": "./tools/src/nx-plugin/index.ts", "options": { "targetName": "build" } }
 */
import * as fs from 'fs';
import * as path from 'path';
import { createNodesFromFiles, type CreateNodesContextV2, type CreateNodesResult, type CreateNodesV2, type TargetConfiguration } from '@nx/devkit';

export interface UserprefNxPluginOptions {
  /** Name of the inferred target. Default `build`. */
  targetName?: string;
  /** Output folder for built packages, relative to the workspace root. Default `dist`. */
  outputDir?: string;
}

/** packages/<name>/src/index.ts and plugins/<name>/src/index.ts. */
export const BUILD_ENTRY_GLOB = '{packages,plugins}/*/src/index.ts';

const BUILDER = 'tools/src/publish/main.ts';

export function buildTarget(projectRoot: string, options: UserprefNxPluginOptions = {}): TargetConfiguration {
  const targetName = options.targetName ?? 'build';
  const outputDir = options.outputDir ?? 'dist';
  const distArg = outputDir === 'dist' ? '' : ` --dist ${outputDir}`;
  return {
    executor: 'nx:run-commands',
    options: {
      command: `node tools/scripts/run-ts.js ${BUILDER} ${projectRoot}${distArg}`,
      cwd: '{workspaceRoot}',
    },
    dependsOn: [`^${targetName}`],
    cache: true,
    inputs: [
      'production',
      '^production',
      '{workspaceRoot}/tools/src/publish/**/*',
      '{workspaceRoot}/tools/scripts/run-ts.js',
      { externalDependencies: ['typescript'] },
    ],
    outputs: [`{workspaceRoot}/${outputDir}/{projectRoot}`],
    metadata: {
      description: `Compile src/ to CommonJS + .d.ts and write a publishable npm package (package.json, README generated from the options schemas, LICENSE) to ${outputDir}/${projectRoot}`,
      technologies: ['typescript'],
    },
  };
}

function createBuildNode(entry: string, options: UserprefNxPluginOptions | undefined, context: CreateNodesContextV2): CreateNodesResult {
  // entry is <root>/src/index.ts
  const projectRoot = path.posix.dirname(path.posix.dirname(entry));
  // Only folders that are packages: the package.json plugin of Nx makes them projects.
  if (!fs.existsSync(path.join(context.workspaceRoot, projectRoot, 'package.json'))) return {};
  const targetName = options?.targetName ?? 'build';
  return {
    projects: {
      [projectRoot]: {
        targets: { [targetName]: buildTarget(projectRoot, options) },
      },
    },
  };
}

export const createNodesV2: CreateNodesV2<UserprefNxPluginOptions> = [
  BUILD_ENTRY_GLOB,
  (entries, options, context) => createNodesFromFiles(createBuildNode, entries, options ?? {}, context),
];
