/**
 * The plugin generator: it scaffolds each kind of plugin into a throw-away workspace, and the
 * generated code type-checks and its own tests pass. The workspace is written under
 * <repo>/tmp/ (gitignored) so node resolution finds this repository's node_modules, exactly as
 * for a plugin generated into plugins/.
 *
 * SLOW-ISH (~30-60 s): runs tsc and a child jest over the five generated plugins.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { createTreeWithEmptyWorkspace } from '@nx/devkit/testing';
import { readJson, type Tree } from '@nx/devkit';
import { normalizeOptions, pluginGenerator, type PluginKind } from '../src/generators/plugin/generator';

const repo = path.resolve(__dirname, '..', '..');
const KINDS: PluginKind[] = ['loss', 'backbone', 'tokens', 'dataset', 'scorer'];

function workspaceTree(): Tree {
  const tree = createTreeWithEmptyWorkspace();
  // The files a generated plugin relies on from its workspace, as they are in this repository.
  for (const f of ['jest.preset.js', 'tsconfig.base.json']) tree.write(f, fs.readFileSync(path.join(repo, f)));
  return tree;
}

function writeTree(tree: Tree, dir: string): void {
  for (const change of tree.listChanges()) {
    if (change.type === 'DELETE' || !change.content) continue;
    const file = path.join(dir, change.path);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, change.content);
  }
}

describe('plugin generator: names and options', () => {
  it('derives the contribution, package and class names from the folder name and kind', () => {
    expect(normalizeOptions({ name: 'loss-margin', kind: 'loss' })).toMatchObject({
      contribution: 'margin',
      packageName: '@userpref/loss-margin',
      projectRoot: 'plugins/loss-margin',
      className: 'MarginLoss',
      fileName: 'margin-loss',
    });
    expect(normalizeOptions({ name: 'colour-prefs', kind: 'dataset', contribution: 'colours', packageName: 'userpref-plugin-colours' })).toMatchObject({
      contribution: 'colours',
      packageName: 'userpref-plugin-colours',
      className: 'ColoursPreferenceDataset',
    });
    expect(normalizeOptions({ name: 'tokens-pool', kind: 'tokens' }).className).toBe('PoolPreferenceTokens');
  });

  it('refuses bad names and an existing folder, naming the problem', async () => {
    expect(() => normalizeOptions({ name: 'My_Loss', kind: 'loss' })).toThrow(/plugin name 'My_Loss' must be kebab-case/);
    expect(() => normalizeOptions({ name: 'x', kind: 'optimizer' as PluginKind })).toThrow(/--kind 'optimizer' is not one of loss, backbone, tokens, dataset/);
    const tree = workspaceTree();
    tree.write('plugins/loss-margin/package.json', '{}');
    await expect(pluginGenerator(tree, { name: 'loss-margin', kind: 'loss', skipInstall: true })).rejects.toThrow(/plugins\/loss-margin already exists/);
  });
});

describe('plugin generator: generated plugins work', () => {
  fs.mkdirSync(path.join(repo, 'tmp'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(repo, 'tmp', 'generator-spec-'));
  const tree = workspaceTree();

  beforeAll(async () => {
    for (const kind of KINDS) await pluginGenerator(tree, { name: `${kind}-example`, kind, skipInstall: true });
    writeTree(tree, dir);
  });

  afterAll(() => {
    if (!process.env.KEEP_GENERATED) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('scaffolds a package, its wiring, an implementation and a test for each kind, and nothing else', () => {
    const changed = tree
      .listChanges()
      .map((c) => c.path)
      .filter((p) => p.startsWith('plugins/'))
      .sort();
    const expected = KINDS.flatMap((kind) => {
      const root = `plugins/${kind}-example`;
      return [`${root}/jest.config.js`, `${root}/package.json`, `${root}/src/example-${kind}.ts`, `${root}/src/index.ts`, `${root}/test/example-${kind}.spec.ts`];
    }).sort();
    expect(changed).toEqual(expected);
    // Core is never touched: plugins are found by name at run time.
    expect(tree.listChanges().filter((c) => c.path.startsWith('packages/'))).toEqual([]);
  });

  it('writes a package.json that depends on core with the tfjs version core itself uses', () => {
    const core = JSON.parse(fs.readFileSync(path.join(repo, 'packages/core/package.json'), 'utf8'));
    const loss = readJson(tree, 'plugins/loss-example/package.json');
    expect(loss).toMatchObject({
      name: '@userpref/loss-example',
      version: '0.1.0',
      license: 'Apache-2.0',
      main: './src/index.ts',
      dependencies: { '@userpref/core': '*', '@tensorflow/tfjs-core': core.dependencies['@tensorflow/tfjs-core'] },
      devDependencies: { '@userpref/runtime': '*' },
    });
    expect(loss.description.length).toBeGreaterThan(20);
    expect(readJson(tree, 'plugins/tokens-example/package.json').dependencies['@userpref/safetensors']).toBe('*');
    // A scorer computes no tensors: no tfjs dependency. No plugin needs inversify: core's definePlugin binds.
    expect(Object.keys(readJson(tree, 'plugins/scorer-example/package.json').dependencies)).toEqual(['@userpref/core']);
    expect(tree.read('plugins/loss-example/jest.config.js', 'utf8')).toContain("require('../../jest.preset.js')");
    for (const kind of KINDS) {
      const index = tree.read(`plugins/${kind}-example/src/index.ts`, 'utf8')!;
      expect(index).toContain("definePlugin('@userpref/" + kind + "-example', [");
      // The contribution is named once: no optionsName, no whenNamed, no second spelling.
      expect(index.match(/name: 'example'/g)).toHaveLength(1);
      expect(index).not.toMatch(/optionsName|whenNamed|PluginOptions|ContainerModule|from 'inversify'/);
      // The option type comes from the schema beside the implementation.
      const impl = tree.read(`plugins/${kind}-example/src/example-${kind}.ts`, 'utf8')!;
      expect(impl).toContain('export const exampleOptionsSchema = {');
      expect(impl).toMatch(/export type Example\w+Options = OptionsOf<typeof exampleOptionsSchema>;/);
      expect(impl).not.toMatch(/interface Example\w+Options/);
    }
    for (const c of tree.listChanges()) expect(c.content?.toString()).not.toMatch(/TODO|<%|%>/);
  });

  it('generates code that type-checks under the workspace settings', () => {
    const tsconfig = path.join(dir, 'tsconfig.check.json');
    fs.writeFileSync(tsconfig, JSON.stringify({ extends: './tsconfig.base.json', compilerOptions: { noEmit: true }, include: ['plugins/*/src/**/*.ts', 'plugins/*/test/**/*.ts'] }));
    try {
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', tsconfig], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      throw new Error(`generated plugins do not type-check:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    }
  });

  it("passes the generated plugins' own tests", () => {
    const jestBin = require.resolve('jest/bin/jest');
    const projects = KINDS.map((k) => `plugins/${k}-example`);
    let output: string;
    try {
      output = execFileSync(process.execPath, [jestBin, '--ci', '--colors=false', '--json', '--outputFile', 'jest-result.json', '--projects', ...projects], {
        cwd: dir,
        encoding: 'utf8',
        stdio: 'pipe',
        env: { ...process.env, JEST_WORKER_ID: undefined, FORCE_COLOR: '0' },
      });
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string };
      throw new Error(`generated plugin tests failed:\n${err.stderr ?? ''}${err.stdout ?? ''}`);
    }
    const result = JSON.parse(fs.readFileSync(path.join(dir, 'jest-result.json'), 'utf8'));
    expect(result.success).toBe(true);
    expect(result.numFailedTests).toBe(0);
    // Every kind's test file ran, and each has several tests.
    expect(result.testResults).toHaveLength(KINDS.length);
    for (const file of result.testResults) expect(file.assertionResults.length).toBeGreaterThanOrEqual(4);
    expect(output).toBeDefined();
  });
});
