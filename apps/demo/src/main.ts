/**
 * `npm start`: the embedded end-to-end run on this machine, nothing downloaded.
 *
 *  1. a synthpick world (preset and seed from `<config>.world.json`: `camps-split-xl` for demo.json; Pick-a-Pic v2
 *     parquet, written by the dataset plugin's generator) and its import into the processed format;
 *  2. the base the config names, committed in apps/demo/base: by default the taste-free base
 *     (perception + a hand-set "compare with the earlier images and copy their answers" reader,
 *     fitted to no preference; research/standin/build_reader_base.py --reader kernel); with
 *     `--config apps/demo/config/demo-standin.json`, the earlier stand-in whose reader was fitted on
 *     other people's choices (README "The embedded demo");
 *  3. stage 1 (LoRA, base + contrastive loss), the non-personalised baseline (the same training
 *     with 0 reference pairs), stage 2 (the preference tokens the config names, on the stage-1 adapter);
 *  4. evaluation on the test split with baselines, printed as a table, with paired rows (stage 1 vs the
 *     base, stage 2 vs stage 1, ...);
 *  5. similar-user mining on the stage-2 model (apps/mine: the target image's attention to the
 *     preference tokens after each test user's history), its purity against the hidden taste groups
 *     printed beside its exact random baseline.
 * It ends with stage 1's learning curve (its metrics.jsonl: training loss and accuracy per window of
 * updates, validation accuracy before the first update and every eval_steps), stage 2 against
 * stage 1 and the mining purity.
 *
 * `--seed N` runs the same on another draw of the world (its own data and run directories).
 * Each step is skipped when its output already exists, so a second `npm start` only re-evaluates.
 * The run directory records the base's weights and the world (demo-base.json): outputs trained on
 * another base or world (preset, seed or the preset's parameters) are moved aside (to <run>.stale-<time>), never mixed with the current one and never deleted.
 * Every step runs the same app a user runs (apps/train, apps/train2, apps/eval) in a child process.
 * Each app computes on one core, so with `--jobs 2` (the default where there are two cores or more)
 * the steps that do not need each other share the machine: the non-personalised baseline trains
 * beside stage 1 and mining runs beside the evaluation, each background step writing its output
 * to a log in the run directory. `--jobs 1` runs them one after the other. The results are the
 * same either way (each app is deterministic on its own).
 */
import { spawn, spawnSync, type ChildProcess } from 'child_process';
import { closeSync, existsSync, openSync, promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfigFile, runMain } from '@userpref/cli';
import { TRUTH_FILE, generateSynthpick, importDataset, synthpickParams, type SynthpickPreset } from '@userpref/dataset-pickapic';
import { claimRunDir, paramsHash } from './run-dir';
import { STAGE1_LABEL, STAGE2_LABEL, demoSummary } from './summary';
import { readDemoWorld } from './world';

const root = path.resolve(__dirname, '..', '..', '..');
const data = path.join(root, 'data');

/** `--config <file>`, `--seed N` and `--jobs N` are the demo's own; every other flag goes to every runner (e.g. `--set train.max_steps=2`). */
const passThrough: string[] = [];
let configArg: string | undefined;
let seedArg: number | undefined;
let jobs = Math.min(2, os.availableParallelism());
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--config') configArg = process.argv[++i];
  else if (a === '--seed') seedArg = Number(process.argv[++i]);
  else if (a === '--jobs') jobs = Number(process.argv[++i]);
  else passThrough.push(a);
}
if (seedArg !== undefined && !Number.isInteger(seedArg)) throw new Error('--seed takes an integer (the synthpick world seed)');
if (!(jobs === 1 || jobs === 2)) throw new Error('--jobs takes 1 (one step at a time) or 2 (independent steps side by side)');
const config = configArg ? path.resolve(configArg) : path.join(__dirname, '..', 'config', 'demo.json');

interface DemoConfig {
  out?: string;
  plugins?: { backbone?: { options?: { path?: string } }; dataset?: { options?: { path?: string } } };
}

/**
 * Updates of stage 2. The prompt pool's keys start small and the pull turns each toward the
 * preference directions that choose it, like k-means steps (README, "The embedded demo"): mining
 * purity on seed 42's test users was 48.4% after 20 updates, 56.6% after 60.
 */
const STAGE2_UPDATES = 60;

function step(title: string) {
  process.stderr.write(`\n=== ${title} ===\n`);
}

let runs = '';
let dataArgs: string[] = [];

function appArgv(app: string, args: string[]): string[] {
  return [path.join(root, 'tools', 'scripts', 'run-ts.js'), path.join(root, 'apps', app, 'src', 'main.ts'), '--config', config, '--out', runs, ...dataArgs, '--seed', String(seedArg ?? 42), ...args, ...passThrough];
}

function runApp(app: string, args: string[]): void {
  const r = spawnSync(process.execPath, appArgv(app, args), { stdio: 'inherit', cwd: root });
  if (r.status !== 0) throw new Error(`${app} ${args.join(' ')} failed (exit ${r.status})`);
}

/** Background steps still running: stopped if the demo fails, so none outlives it. */
const background = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of background) child.kill();
});

/** Starts `app` on the other core with its output in `log`; the promise settles when it ends. */
function startApp(app: string, args: string[], log: string): Promise<void> {
  const fd = openSync(log, 'w');
  const child = spawn(process.execPath, appArgv(app, args), { stdio: ['ignore', fd, fd], cwd: root });
  background.add(child);
  return new Promise((resolve, reject) => {
    child.on('exit', (code, signal) => {
      background.delete(child);
      closeSync(fd);
      if (code === 0) resolve();
      else reject(new Error(`${app} ${args.join(' ')} failed (${signal ?? `exit ${code}`}); its output is in ${path.relative(root, log)}`));
    });
  });
}

/** `app` in the background when two jobs may run, else now; `title` announces it either way. */
function runBeside(title: string, app: string, args: string[], log: string): Promise<void> {
  if (jobs === 1) {
    step(title);
    runApp(app, args);
    return Promise.resolve();
  }
  step(`${title} (in the background beside the next step; output in ${path.relative(root, log)})`);
  return startApp(app, args, log);
}

async function latestAdapter(exp: string): Promise<string> {
  const dir = path.join(runs, exp);
  const names = (await fs.readdir(dir)).filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(b.split('-')[1]) - Number(a.split('-')[1]));
  if (!names.length) throw new Error(`no checkpoint in ${dir}`);
  return path.join(dir, names[0]);
}

runMain(async () => {
  const started = Date.now();
  // With `extends` merged in (paths an extended file declares come back absolute).
  const demoConfig = (await loadConfigFile(config)) as DemoConfig;
  // The world: <config>.world.json beside the run config (world.ts).
  const { preset, seed: configSeed, stage2Args } = await readDemoWorld(config);
  const seed = seedArg ?? configSeed;
  // The data and run directories the config names (relative to the config file); another seed gets its own.
  const suffix = seed === configSeed ? '' : `-seed${seed}`;
  const configured = demoConfig.plugins?.dataset?.options?.path;
  const processedBase = configured ? path.resolve(path.dirname(config), configured) : path.join(data, 'synthpick', 'processed');
  const processed = suffix ? `${path.dirname(processedBase)}${suffix}/processed` : processedBase;
  const raw = path.join(path.dirname(processed), 'raw');
  if (suffix) dataArgs = ['--set', `plugins.dataset.options.path=${processed}`];
  const runBase = process.env.USERPREF_DEMO_RUN ? path.join(root, 'runs', process.env.USERPREF_DEMO_RUN) : demoConfig.out ? path.resolve(path.dirname(config), demoConfig.out) : path.join(root, 'runs', 'demo');
  runs = `${runBase}${suffix}`;

  // Data of another world (an earlier demo's preset or seed) is moved aside, never reused or deleted.
  const dataDir = path.dirname(processed);
  const worldParams = paramsHash(synthpickParams(preset));
  if (existsSync(path.join(raw, TRUTH_FILE))) {
    const truth = JSON.parse(await fs.readFile(path.join(raw, TRUTH_FILE), 'utf8')) as { preset?: string; seed?: number; params?: object };
    if (truth.preset !== preset || truth.seed !== seed || !truth.params || paramsHash(truth.params) !== worldParams) {
      const aside = `${dataDir}.stale-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      await fs.rename(dataDir, aside);
      const what = truth.preset === preset && truth.seed === seed ? `with other parameters than today's ${preset} preset` : `${truth.preset} seed ${truth.seed}, not ${preset} seed ${seed}`;
      process.stderr.write(`${path.relative(root, dataDir)} holds synthpick ${what}: moved to ${path.relative(root, aside)}\n`);
    }
  }
  if (!existsSync(path.join(raw, TRUTH_FILE)) && !existsSync(path.join(processed, 'manifest.json'))) {
    step(`1/8 generating synthpick (${preset} preset, seed ${seed})`);
    const g = await generateSynthpick({ preset: preset as SynthpickPreset, seed, outDir: raw });
    process.stderr.write(`synthpick: ${g.rows} comparisons, ${g.images} images; Bayes-optimal ${(100 * g.summary.bayesOptimalAccuracy).toFixed(1)}%, population-average ${(100 * g.summary.populationAccuracy).toFixed(1)}%\n`);
  }
  if (!existsSync(path.join(processed, 'manifest.json'))) {
    step('2/8 importing into the processed format');
    await importDataset({ from: [raw], out: processed, seed: 42 });
  }

  // The base is the one the demo config names (relative to the config file).
  const basePath = demoConfig.plugins?.backbone?.options?.path;
  if (!basePath) throw new Error(`${config} names no backbone path (plugins.backbone.options.path)`);
  const base = path.resolve(path.dirname(config), basePath);
  step('3/8 the pretrained base');
  const about = path.join(base, 'standin.json');
  if (!existsSync(about)) {
    process.stderr.write(`${path.relative(root, base)}: no standin.json, so not a committed stand-in; used as it is\n`);
  } else {
    const standin = JSON.parse(await fs.readFile(about, 'utf8')) as {
      perception_held_out_token_accuracy: Record<string, number>;
      reader_fit_held_out_accuracy_8_pairs: number | null;
    };
    const seen = Object.entries(standin.perception_held_out_token_accuracy).map(([k, v]) => `${k} ${(100 * v).toFixed(1)}%`);
    const fitted = standin.reader_fit_held_out_accuracy_8_pairs;
    process.stderr.write(
      `${path.relative(root, base)} (research/standin/build_reader_base.py):\n` +
        `  perception fitted on other images' attributes (read on held-out images: ${seen.join(', ')});\n` +
        (fitted === null
          ? `  history reader set by hand and taste-free: compares the target with each earlier image on every attribute and copies their +/- answers; fitted to no one's preferences\n`
          : `  history reader set by hand, its weights fitted on other people's choices (${(100 * fitted).toFixed(1)}% for held-out people with 8 pairs)\n`),
    );
  }

  const aside = await claimRunDir(runs, base, new Date(), { preset, seed, params: worldParams });
  if (aside) process.stderr.write(`${path.relative(root, runs)} was trained on another base or world: moved to ${path.relative(root, aside)}; starting over\n`);

  const norefsDone = existsSync(path.join(runs, 'stage1-norefs'))
    ? Promise.resolve()
    : runBeside('4/8 non-personalised baseline: the same training without references', 'train', ['--exp_name', 'stage1-norefs', '--ref_pair_num', '0'], path.join(runs, 'stage1-norefs.log'));
  if (!existsSync(path.join(runs, 'stage1'))) {
    step('5/8 stage 1: LoRA with base + contrastive loss');
    runApp('train', ['--exp_name', 'stage1']);
  }
  await norefsDone;
  const stage1 = await latestAdapter('stage1');
  if (!existsSync(path.join(runs, 'stage2'))) {
    step('6/8 stage 2: preference tokens on the stage-1 adapter');
    // Validated once, at its end: the learning curve's validations are stage 1's.
    runApp('train2', ['--exp_name', 'stage2', '--max_steps', String(STAGE2_UPDATES), '--lora_path', path.join(stage1, 'adapter'), '--eval_steps', '0', '--eval_on_start', '0', ...stage2Args]);
  }
  const stage2 = await latestAdapter('stage2');
  const norefs = await latestAdapter('stage1-norefs');

  const BASE_LABEL = 'base (no LoRA)';
  const models = [
    { label: BASE_LABEL },
    { label: STAGE1_LABEL, adapter: path.join(stage1, 'adapter'), curve: true },
    { label: STAGE2_LABEL, adapter: path.join(stage1, 'adapter'), tokens: path.join(stage2, 'tokens') },
    { label: 'non-personalised', adapter: path.join(norefs, 'adapter'), reference_pairs: 0 },
  ];
  // What each step adds, measured on the same comparisons (paired), not by overlapping intervals.
  const paired = [
    ['stage 1 (LoRA)', 'non-personalised'],
    ['stage 1 (LoRA)', BASE_LABEL],
    ['stage 2 (+tokens)', 'stage 1 (LoRA)'],
    ['stage 1 (LoRA)', 'nearest-reference'],
  ];
  const mineArgs = ['--exp_name', 'mine', '--lora_path', path.join(stage1, 'adapter'), '--tokens_path', path.join(stage2, 'tokens'), '--split', 'test', '--k', '5', '--orders', '5'];
  const mined = runBeside('7/8 similar users on the stage-2 model (mining)', 'mine', mineArgs, path.join(runs, 'mine.log'));
  step('8/8 evaluation on the test split');
  runApp('eval', ['--exp_name', 'eval', '--set', `eval.models=${JSON.stringify(models)}`, '--set', `eval.paired=${JSON.stringify(paired)}`]);
  await mined;
  const summary = await demoSummary({ stage1Metrics: path.join(runs, 'stage1', 'metrics.jsonl'), results: path.join(runs, 'eval', 'results.json'), neighbours: path.join(runs, 'mine', 'neighbours.json') });
  process.stderr.write(`\n${summary}`);
  process.stderr.write(`\ndemo finished in ${((Date.now() - started) / 60000).toFixed(1)} min; results in ${path.join(runs, 'eval')} (results.md, results.json, results.png)\n`);
});
