import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { validateOptions } from '@userpref/core';
import { TRAIN_FLAGS, loadConfigFile, parseRun } from '../src';

/*
 * `extends` resolves each relative path against the file that declares it (as tsconfig does).
 * Which values are paths: `format: 'path'` in the run config's schemas and in plugin options
 * schemas. The plugin here is written like one from outside the repository (a folder named by
 * path), with path options at the top, nested in an object and in an array.
 */
const PLUGIN_JS = `
const pathOpt = { type: ['string', 'null'], format: 'path', default: null };
exports.userprefPlugin = {
  packageName: 'fixture-plugin',
  containerModule: {},
  contributions: [
    { kind: 'backbone', name: 'fx', description: 'fixture', optionsSchema: { type: 'object', properties: {
      path: { type: 'string', format: 'path' },
      cache: pathOpt,
      label: { type: 'string', description: 'not a path, even with a slash' },
      nested: { type: 'object', properties: { file: { type: 'string', format: 'path' }, note: { type: 'string' } } },
      files: { type: 'array', items: { type: 'string', format: 'path' } },
    } } },
    { kind: 'dataset', name: 'fxd', description: 'fixture', optionsSchema: { type: 'object', properties: { path: { type: 'string', format: 'path' }, refPairNum: { type: 'integer' } } } },
  ],
};
`;

describe('run config extends: paths resolve against the file that declares them', () => {
  let root: string;
  const write = async (rel: string, value: unknown) => {
    const file = path.join(root, rel);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, typeof value === 'string' ? value : JSON.stringify(value, null, 1));
    return file;
  };

  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'cli-extends-'));
    await write('plugin-fixture/package.json', { name: 'fixture-plugin', version: '0.0.0', main: 'index.js' });
    await write('plugin-fixture/index.js', PLUGIN_JS);
    // three levels in three unrelated folders: g/grand.json <- p/q/parent.json <- c/child.json
    await write('g/grand.json', {
      out: 'g-runs',
      plugins: {
        backbone: { package: '../plugin-fixture', name: 'fx', options: { path: 'g-ckpt', label: 'keep/me', nested: { file: 'g-file', note: 'a/b' } } },
      },
      eval: { models: [{ label: 'm', adapter: 'g-adapter', tokens: '/abs/tokens' }] },
    });
    await write('p/q/parent.json', {
      extends: '../../g/grand.json',
      plugins: {
        backbone: { options: { cache: 'p-cache', files: ['x', '/abs/y'] } },
        dataset: { package: '../../plugin-fixture', name: 'fxd', options: { path: 'p-data', refPairNum: 2 } },
      },
    });
    await write('c/child.json', { extends: '../p/q/parent.json', exp_name: 'child', plugins: { dataset: { options: { path: 'c-data' } } } });
  });
  afterAll(async () => fs.rm(root, { recursive: true, force: true }));

  it('multi-level: each level’s paths are absolute in its own folder; the top file’s stay as written', async () => {
    const c = (await loadConfigFile(path.join(root, 'c/child.json'))) as any;
    const g = (p: string) => path.join(root, 'g', p);
    const pq = (p: string) => path.join(root, 'p/q', p);
    expect(c.out).toBe(g('g-runs'));
    expect(c.plugins.backbone.package).toBe(path.join(root, 'plugin-fixture'));
    expect(c.plugins.backbone.options).toEqual({
      path: g('g-ckpt'),
      label: 'keep/me',
      nested: { file: g('g-file'), note: 'a/b' },
      cache: pq('p-cache'),
      files: [pq('x'), '/abs/y'],
    });
    expect(c.eval.models).toEqual([{ label: 'm', adapter: g('g-adapter'), tokens: '/abs/tokens' }]);
    expect(c.plugins.dataset.package).toBe(path.join(root, 'plugin-fixture'));
    // the child's own value: as written, resolved later against the child's folder (the run's baseDir)
    expect(c.plugins.dataset.options).toEqual({ path: 'c-data', refPairNum: 2 });
    expect(c.exp_name).toBe('child');
    expect(c.extends).toBeUndefined();
  });

  it('parseRun: out from the grandparent, baseDir the child folder, flags still against cwd', async () => {
    const { config } = await parseRun({ name: 't', description: 'd', flags: TRAIN_FLAGS, defaultConfig: path.join(root, 'c/child.json') }, ['--data', 'flag-data'], '/cwd');
    expect(config.out).toBe(path.join(root, 'g', 'g-runs'));
    expect(config.baseDir).toBe(path.join(root, 'c'));
    expect(config.plugins.dataset!.options!.path).toBe('/cwd/flag-data');
    expect(config.plugins.backbone!.options!.path).toBe(path.join(root, 'g', 'g-ckpt'));
  });

  it('a parent loaded directly keeps its own values as written (same result: its folder is the baseDir)', async () => {
    const p = (await loadConfigFile(path.join(root, 'p/q/parent.json'))) as any;
    expect(p.plugins.dataset.options.path).toBe('p-data');
    expect(p.plugins.backbone.options.cache).toBe('p-cache');
    expect(p.plugins.backbone.options.path).toBe(path.join(root, 'g', 'g-ckpt'));
  });

  it("a config elsewhere extending apps/demo/config/demo.json gets the demo's out, not one next to itself", async () => {
    const workspace = path.resolve(__dirname, '..', '..', '..');
    const file = await write('elsewhere/deep/my-demo.json', { extends: path.relative(path.join(root, 'elsewhere/deep'), path.join(workspace, 'apps/demo/config/demo.json')), exp_name: 'mine' });
    const { config } = await parseRun({ name: 't', description: 'd', flags: TRAIN_FLAGS, defaultConfig: file }, [], root);
    expect(config.out).toBe(path.join(workspace, 'runs', 'demo'));
    // the base path demo.json declares, and the data path apps/train/config/default.json declares
    expect(config.plugins.backbone!.options!.path).toBe(path.join(workspace, 'apps/demo/base/idefics2-small-kernel'));
    expect(config.plugins.dataset!.options!.path).toBe(path.join(workspace, 'data/synthpick/processed'));
    expect(config.exp_name).toBe('mine');
    expect(config.baseDir).toBe(path.join(root, 'elsewhere/deep'));
  });

  it('extends cycles and unloadable plugins are reported with the file', async () => {
    const a = await write('cyc/a.json', { extends: 'b.json', plugins: {} });
    await write('cyc/b.json', { extends: 'a.json', plugins: {} });
    await expect(loadConfigFile(a)).rejects.toThrow(/extends itself: .*a\.json -> .*b\.json -> .*a\.json/);
    await write('bad/parent.json', { plugins: { backbone: { package: '@nope/not-installed', name: 'x', options: { path: 'p' } } } });
    const child = await write('bad/child.json', { extends: 'parent.json' });
    await expect(loadConfigFile(child)).rejects.toThrow(/config .*bad\/parent\.json: cannot load plugin '@nope\/not-installed' to read which of its backbone options are paths/);
    await write('bad/wrongname.json', { plugins: { backbone: { package: path.join(root, 'plugin-fixture'), name: 'nope', options: { path: 'p' } } } });
    const child2 = await write('bad/child2.json', { extends: 'wrongname.json' });
    await expect(loadConfigFile(child2)).rejects.toThrow(/plugin '.*plugin-fixture' has no backbone named 'nope' \(it offers: fx\)/);
  });

  it("format 'path' is a known format to the options validator (any string)", () => {
    expect(validateOptions('x', { type: 'object', properties: { p: { type: 'string', format: 'path' } } }, { p: 'a b/../c' })).toEqual({ p: 'a b/../c' });
  });
});
