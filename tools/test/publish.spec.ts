/**
 * Publishing: the inferred Nx build target, the publish builder's checks, and the real thing:
 * @userpref/core and @userpref/loss-preference are built, packed with `npm pack`, installed from
 * the tarballs into a folder OUTSIDE this repository (so nothing can resolve back into the
 * workspace), and a plain-JavaScript child process assembles a run from a config naming the
 * installed plugin and computes the loss.
 *
 * SLOW (~30-90 s): two tsc builds, two `npm pack`, one `npm install` from the registry (the npm
 * cache makes it fast when warm). Needs the npm registry or a warm npm cache.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildPackage, BuildError } from '../src/publish/build-package';
import { configSnippet, optionsTable, typeOf } from '../src/publish/readme';
import { createNodesV2 } from '../src/nx-plugin';

const repo = path.resolve(__dirname, '..', '..');
const quiet = () => undefined;

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): string {
  try {
    return execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

describe('inferred build target (tools/src/nx-plugin)', () => {
  it('gives every package with src/index.ts a cached build target writing dist/<root>, after its dependencies', async () => {
    const [glob, create] = createNodesV2;
    expect(glob).toBe('{packages,plugins}/*/src/index.ts');
    const results = await create(['packages/core/src/index.ts', 'plugins/loss-preference/src/index.ts', 'plugins/no-such-package/src/index.ts'], { targetName: 'build' }, { workspaceRoot: repo, nxJsonConfiguration: {} });
    const byFile = Object.fromEntries(results.map(([file, r]) => [file, r]));
    const core = byFile['packages/core/src/index.ts'].projects!['packages/core'].targets!.build;
    expect(core.options.command).toBe('node tools/scripts/run-ts.js tools/src/publish/main.ts packages/core');
    expect(core.dependsOn).toEqual(['^build']);
    expect(core.cache).toBe(true);
    expect(core.outputs).toEqual(['{workspaceRoot}/dist/{projectRoot}']);
    expect(core.inputs).toEqual(expect.arrayContaining(['production', '^production', '{workspaceRoot}/tools/src/publish/**/*']));
    expect(byFile['plugins/loss-preference/src/index.ts'].projects!['plugins/loss-preference'].targets!.build).toBeDefined();
    // A folder without package.json is not a project: no target is invented for it.
    expect(byFile['plugins/no-such-package/src/index.ts'].projects).toBeUndefined();
  });
});

describe('README tables from options schemas', () => {
  it('renders type, bounds, default, required and description, escaping table syntax', () => {
    expect(typeOf({ type: 'number', exclusiveMinimum: 0 })).toBe('number (> 0)');
    expect(typeOf({ enum: ['mean', 'sum'] })).toBe('"mean" | "sum"');
    expect(typeOf({ type: 'array', items: { type: 'integer' }, minItems: 1 })).toBe('integer[] (at least 1 items)');
    const table = optionsTable({
      type: 'object',
      properties: { mode: { enum: ['mean', 'sum'], default: 'mean', description: 'Batch reduction.' }, margin: { type: 'number', description: 'Gap | with a pipe.' } },
      required: ['margin'],
    });
    expect(table.split('\n')).toEqual([
      '| Option | Type | Default | Required | Description |',
      '| --- | --- | --- | --- | --- |',
      '| `mode` | "mean" \\| "sum" | `"mean"` | no | Batch reduction. |',
      '| `margin` | number |  | yes | Gap \\| with a pipe. |',
    ]);
    expect(optionsTable({ type: 'object', properties: {} })).toBe('No options.');
    const snippet = JSON.parse(configSnippet('userpref-plugin-x', { kind: 'loss', name: 'hinge', description: '', optionsSchema: { type: 'object', properties: { margin: { type: 'number' } }, required: ['margin'] } }));
    expect(snippet).toEqual({ plugins: { losses: [{ package: 'userpref-plugin-x', name: 'hinge', weight: 1, options: { margin: '<number>' } }] } });
  });
});

describe('publish builder checks', () => {
  // A tiny workspace under <repo>/tmp so the workspace's node_modules (ajv, inversify, core) resolve.
  fs.mkdirSync(path.join(repo, 'tmp'), { recursive: true });
  const ws = fs.mkdtempSync(path.join(repo, 'tmp', 'publish-checks-'));
  const write = (file: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(ws, file)), { recursive: true });
    fs.writeFileSync(path.join(ws, file), text);
  };
  beforeAll(() => {
    write('package.json', JSON.stringify({ name: 'ws', private: true, license: 'Apache-2.0', workspaces: ['plugins/*'] }));
    fs.copyFileSync(path.join(repo, 'tsconfig.base.json'), path.join(ws, 'tsconfig.base.json'));
    write('plugins/undeclared/package.json', JSON.stringify({ name: 'userpref-plugin-undeclared', version: '1.0.0', description: 'd', license: 'Apache-2.0' }));
    write('plugins/undeclared/src/index.ts', "import Ajv from 'ajv';\n\nexport const ajv = new Ajv();\n");
    write('plugins/not-a-plugin/package.json', JSON.stringify({ name: 'userpref-not-a-plugin', version: '1.0.0', description: 'd', license: 'Apache-2.0', dependencies: { ajv: '^8.0.0' } }));
    write('plugins/not-a-plugin/src/index.ts', "import Ajv from 'ajv';\n\nexport const ajv = new Ajv();\n");
    write('plugins/broken/package.json', JSON.stringify({ name: 'userpref-broken', version: '1.0.0', description: 'd', license: 'Apache-2.0' }));
    write('plugins/broken/src/index.ts', "export const n: number = 'not a number';\n");
  });
  afterAll(() => fs.rmSync(ws, { recursive: true, force: true }));

  it('fails on an import the package.json does not declare, naming file, line and package', () => {
    expect(() => buildPackage({ workspaceRoot: ws, projectRoot: 'plugins/undeclared', log: quiet })).toThrow(
      /the built code imports 'ajv' but plugins\/undeclared\/package.json does not declare it[\s\S]*index\.js:\d+ imports 'ajv'/,
    );
  });

  it('fails when a package under plugins/ does not export userprefPlugin', () => {
    expect(() => buildPackage({ workspaceRoot: ws, projectRoot: 'plugins/not-a-plugin', log: quiet })).toThrow(/plugins\/not-a-plugin\/src\/index.ts must export 'userprefPlugin'/);
  });

  it('fails on a type error, with the TypeScript message', () => {
    expect(() => buildPackage({ workspaceRoot: ws, projectRoot: 'plugins/broken', log: quiet })).toThrow(/1 TypeScript error[\s\S]*TS2322/);
  });

  it('refuses to build a package before the workspace packages it depends on', () => {
    const dist = path.join(ws, 'empty-dist');
    expect(() => buildPackage({ workspaceRoot: repo, projectRoot: 'plugins/loss-preference', distRoot: dist, log: quiet })).toThrow(BuildError);
    expect(() => buildPackage({ workspaceRoot: repo, projectRoot: 'plugins/loss-preference', distRoot: dist, log: quiet })).toThrow(/depends on @userpref\/core, which is not built yet/);
  });
});

describe('SLOW: build, npm pack, install outside the workspace, assemble from config', () => {
  fs.mkdirSync(path.join(repo, 'tmp'), { recursive: true });
  // Built packages live under <repo>/tmp so the builder can load them against the workspace.
  const work = fs.mkdtempSync(path.join(repo, 'tmp', 'publish-spec-'));
  const dist = path.join(work, 'dist');
  // The consumer project is outside the repository: nothing resolves back into the workspace.
  const consumer = fs.mkdtempSync(path.join(os.tmpdir(), 'userpref-consumer-'));
  afterAll(() => {
    if (process.env.KEEP_PUBLISHED) return;
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(consumer, { recursive: true, force: true });
  });

  let tarballs: string[] = [];

  it('builds core and the loss plugin into publishable folders', () => {
    const core = buildPackage({ workspaceRoot: repo, projectRoot: 'packages/core', distRoot: dist, log: quiet });
    const loss = buildPackage({ workspaceRoot: repo, projectRoot: 'plugins/loss-preference', distRoot: dist, log: quiet });
    const coreVersion = JSON.parse(fs.readFileSync(path.join(repo, 'packages/core/package.json'), 'utf8')).version;
    const lossSource = JSON.parse(fs.readFileSync(path.join(repo, 'plugins/loss-preference/package.json'), 'utf8'));

    expect(core.manifest).toMatchObject({ name: '@userpref/core', main: './index.js', types: './index.d.ts', license: 'Apache-2.0' });
    expect(core.manifest.peerDependencies).toBeUndefined();
    expect(loss.manifest.main).toBe('./index.js');
    expect(loss.manifest.exports).toEqual({ '.': { types: './index.d.ts', default: './index.js' }, './package.json': './package.json' });
    // The plugin peers on core with a concrete range; other dependencies are copied; dev ones dropped.
    expect(loss.manifest.peerDependencies).toEqual({ '@userpref/core': `^${coreVersion}` });
    for (const [name, range] of Object.entries(lossSource.dependencies as Record<string, string>)) {
      if (name !== '@userpref/core') expect(loss.manifest.dependencies?.[name]).toBe(range);
    }
    // No "*" ranges, no dev dependencies, no entry point into TypeScript sources.
    expect(JSON.stringify(loss.manifest)).not.toMatch(/"\*"|devDependencies|[^d]\.ts"/);
    expect(loss.contributions).toEqual(expect.arrayContaining([{ kind: 'loss', name: 'contrastive' }]));

    for (const r of [core, loss]) {
      for (const f of ['index.js', 'index.d.ts', 'package.json', 'README.md', 'LICENSE']) expect(fs.existsSync(path.join(r.outDir, f))).toBe(true);
      expect(r.files.some((f) => /\.spec\.|test\//.test(f))).toBe(false);
      expect(fs.readFileSync(path.join(r.outDir, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004[\s\S]*END OF TERMS AND CONDITIONS/);
    }
    // README: one section per contribution, the options table generated from the schema.
    const readme = fs.readFileSync(path.join(loss.outDir, 'README.md'), 'utf8');
    expect(readme).toContain('npm install @userpref/loss-preference @userpref/core');
    expect(readme).toContain('### Loss `contrastive`');
    expect(readme).toMatch(/\| `temperature` \| number \(> 0\) \| `1` \| no \| .+ \|/);
  });

  it('packs both with npm pack: compiled code, declarations, README and LICENSE, no sources or tests', () => {
    const out = fs.mkdtempSync(path.join(work, 'tarballs-'));
    tarballs = ['packages/core', 'plugins/loss-preference'].map((root) => {
      const json = JSON.parse(run('npm', ['pack', path.join(dist, root), '--pack-destination', out, '--json', '--loglevel=error'], work));
      const files = (json[0].files as Array<{ path: string }>).map((f) => f.path);
      expect(files).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'package.json', 'README.md', 'LICENSE']));
      expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
      return path.join(out, json[0].filename as string);
    });
  });

  it('installs from the tarballs outside the workspace, and a plain-JS program assembles the loss from a config', () => {
    fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
    const cpuBackend = JSON.parse(fs.readFileSync(require.resolve('@tensorflow/tfjs-backend-cpu/package.json'), 'utf8')).version;
    const env = { ...process.env, npm_config_onnxruntime_node_install_cuda: 'skip', npm_config_update_notifier: 'false' };
    run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs, `@tensorflow/tfjs-backend-cpu@${cpuBackend}`], consumer, env);

    // One core, shared by the application and the plugin (a peer, not a nested copy).
    expect(fs.existsSync(path.join(consumer, 'node_modules/@userpref/loss-preference/node_modules/@userpref/core'))).toBe(false);
    fs.writeFileSync(
      path.join(consumer, 'main.js'),
      `
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const { assemble, memoryLogger } = require('@userpref/core');
(async () => {
  await tf.setBackend('cpu');
  const config = JSON.parse(process.argv[2]);
  const asm = await assemble(config.plugins, { logger: memoryLogger(), seed: 1, baseDir: __dirname });
  const readout = { negative: 0, positive: 1 };
  const liked = tf.tensor2d([[0, 2]]);
  const disliked = tf.tensor2d([[1, 0]]);
  const values = asm.losses.map(({ loss, weight }) => ({ name: loss.name, weight, value: loss.compute({ liked, disliked }, readout).dataSync()[0] }));
  process.stdout.write(JSON.stringify({ core: require.resolve('@userpref/core'), plugin: require.resolve('@userpref/loss-preference'), options: asm.options, values }));
})().catch((e) => { console.error(e.stack || e); process.exit(1); });
`,
    );
    const config = { plugins: { losses: [{ package: '@userpref/loss-preference', name: 'contrastive', weight: 0.5, options: { temperature: 1 } }] } };
    const out = JSON.parse(run(process.execPath, ['main.js', JSON.stringify(config)], consumer, { PATH: process.env.PATH, HOME: process.env.HOME }));
    // Everything came from the install, not from the repository.
    const realConsumer = fs.realpathSync(consumer);
    expect(out.core.startsWith(realConsumer) || out.core.startsWith(consumer)).toBe(true);
    expect(out.plugin).toMatch(/node_modules\/@userpref\/loss-preference\/index\.js$/);
    expect(out.options).toEqual({ 'loss:contrastive': { temperature: 1 } });
    // L_cp by hand (SPEC §4): -log softmax([z_l[+], z_d[+]])[0] - log softmax([z_l[-], z_d[-]])[1]
    //   = log(1 + e^(0 - 2)) + log(1 + e^(0 - 1)).
    const expected = Math.log1p(Math.exp(-2)) + Math.log1p(Math.exp(-1));
    expect(out.values).toHaveLength(1);
    expect(out.values[0].name).toBe('contrastive');
    expect(out.values[0].weight).toBe(0.5);
    expect(out.values[0].value).toBeCloseTo(expected, 5);
  });

  it('type-checks a TypeScript consumer against the installed declarations', () => {
    fs.writeFileSync(
      path.join(consumer, 'check.ts'),
      `import { assemble, type PluginsConfig, type UserprefPlugin } from '@userpref/core';
import { userprefPlugin, ContrastivePreferenceLoss } from '@userpref/loss-preference';
const plugin: UserprefPlugin = userprefPlugin;
const config: PluginsConfig = { losses: [{ package: plugin.packageName, name: 'contrastive', weight: 1 }] };
export const ready = assemble(config, { logger: { info() {}, warn() {}, error() {}, debug() {} }, seed: 1 });
export const loss: { name: string } = new ContrastivePreferenceLoss({ temperature: 1 });
`,
    );
    run(process.execPath, [require.resolve('typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--typeRoots', path.join(repo, 'node_modules/@types'), 'check.ts'], consumer);
  });
});
