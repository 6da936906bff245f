import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { STAGE2_FLAGS, TRAIN_FLAGS, parseRun } from '../src';

describe('runner command line', () => {
  let dir: string;
  let cfg: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cli-'));
    cfg = path.join(dir, 'base.json');
    await fs.writeFile(cfg, JSON.stringify({
      seed: 1,
      out: 'runs',
      plugins: {
        backbone: { package: '@userpref/backbone-idefics2', name: 'idefics2', options: { path: 'ckpt', usePrompt: true } },
        dataset: { package: '@userpref/dataset-pickapic', name: 'pickapic', options: { path: 'data', refPairNum: 8 } },
        tokens: { package: '@userpref/preference-tokens', name: 'prompt', options: { length: 10 } },
      },
      train: { train_bz: 2 },
    }));
    await fs.writeFile(path.join(dir, 'child.json'), JSON.stringify({ extends: 'base.json', exp_name: 'child', train: { epoch: 5 } }));
  });
  afterAll(async () => fs.rm(dir, { recursive: true, force: true }));

  const spec = { name: 'train2', description: 'd', flags: [...TRAIN_FLAGS, ...STAGE2_FLAGS], defaultConfig: '' };

  it("maps the original's flags onto the config, reading --use_prompt 0 as false", async () => {
    const { config } = await parseRun({ ...spec, defaultConfig: cfg }, ['--train_bz', '3', '--use_prompt', '0', '--ref_pair_num', '4', '--length', '6', '--lora_path', 'a/b', '--lr', '2e-5'], '/work');
    expect(config.train!.train_bz).toBe(3);
    expect(config.train!.lr).toBe(2e-5);
    expect(config.train!.grad_acc_step).toBe(4); // schema default
    expect(config.plugins.backbone!.options!.usePrompt).toBe(false);
    expect(config.plugins.dataset!.options!.refPairNum).toBe(4);
    expect(config.plugins.tokens!.options!.length).toBe(6);
    expect(config.plugins.backbone!.options!.adapterPath).toBe('/work/a/b'); // flags resolve against cwd
    expect(config.out).toBe(path.join(dir, 'runs')); // config paths resolve against the config file
    expect(config.baseDir).toBe(dir);
  });

  it('merges extends and applies --set overrides last', async () => {
    const { config } = await parseRun(spec, ['--config', path.join(dir, 'child.json'), '--set', 'train.epoch=7', '--set', 'plugins.tokens.options.init="zeros"'], dir);
    expect(config.exp_name).toBe('child');
    expect(config.train!.epoch).toBe(7);
    expect(config.train!.train_bz).toBe(2);
    expect(config.plugins.tokens!.options!.init).toBe('zeros');
  });

  it('rejects bad values and unknown flags with a clear message', async () => {
    await expect(parseRun({ ...spec, defaultConfig: cfg }, ['--use_prompt', 'yes'])).rejects.toThrow(/--use_prompt expects 0 or 1, got 'yes'/);
    await expect(parseRun({ ...spec, defaultConfig: cfg }, ['--train_bz', '2.5'])).rejects.toThrow(/--train_bz expects an integer/);
    await expect(parseRun({ ...spec, defaultConfig: cfg }, ['--trian_bz', '2'])).rejects.toThrow(/unknown option '--trian_bz'/);
    await expect(parseRun({ ...spec, defaultConfig: cfg }, ['--set', 'train.train_bz=0'])).rejects.toThrow(/run config train: option 'train_bz' must be >= 1/);
    await expect(parseRun({ ...spec, defaultConfig: path.join(dir, 'missing.json') }, [])).rejects.toThrow(/cannot read config/);
  });

  it('--help lists every flag with the value the config gives it', () => {
    const script = `require('reflect-metadata'); require(${JSON.stringify(path.join(__dirname, '..', 'src', 'index.ts'))}).parseRun({ name: 'train2', description: 'd', flags: [...require(${JSON.stringify(path.join(__dirname, '..', 'src', 'flags.ts'))}).TRAIN_FLAGS, ...require(${JSON.stringify(path.join(__dirname, '..', 'src', 'flags.ts'))}).STAGE2_FLAGS], defaultConfig: ${JSON.stringify(cfg)} }, ['--help'])`;
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], { encoding: 'utf8', cwd: path.join(__dirname, '..', '..', '..'), env: { ...process.env, TS_NODE_PROJECT: path.join(__dirname, '..', '..', '..', 'tsconfig.base.json') } });
    expect(r.status).toBe(0);
    for (const f of [...TRAIN_FLAGS, ...STAGE2_FLAGS, { name: 'use_prompt' }, { name: 'seed' }, { name: 'device' }, { name: 'data' }, { name: 'config' }, { name: 'resume' }]) expect(r.stdout).toContain(`--${f.name}`);
    expect(r.stdout).toMatch(/--train_bz <value>\s+Training batch size per step\. \(default: 2\)/);
    expect(r.stdout).toMatch(/--use_prompt <value>[\s\S]*\(default: 1\)/);
    expect(r.stdout).toMatch(/--grad_acc_step <value>[\s\S]*\(default: 4\)/);
  });
});
