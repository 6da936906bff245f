/**
 * The README cannot drift from the code: every command it shows (each line of a ```sh block, and
 * every inline `npm …`, `npx …`, `node …`, `python …` span in its prose) is run here as written,
 * in README order, in a fresh copy of the workspace (the tracked files, with this checkout's
 * node_modules linked in). A command runs with a tiny budget appended (one update, a few
 * comparisons, a quick benchmark), or is skipped for a stated reason. A command that no rule below
 * knows fails the test: a new README command needs its rule, so it is run too.
 *
 * SLOW (a few minutes): the demo with one update per stage, the three runners, mining, an import,
 * the benchmarks in their quick mode.
 */
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const repo = path.resolve(__dirname, '..', '..', '..');

/** A README command: where it is and what it says. */
export interface ReadmeCommand {
  readonly line: number;
  readonly command: string;
  readonly inline: boolean;
}

/** The commands of a README, in order: ```sh lines (continuations joined, `a && b` split) and inline command spans. */
export function readmeCommands(text: string): ReadmeCommand[] {
  const out: ReadmeCommand[] = [];
  const lines = text.split('\n');
  let fence: string | null = null;
  let pending = '';
  let pendingLine = 0;
  lines.forEach((raw, i) => {
    const fenceMatch = /^\s*```(\w*)/.exec(raw);
    if (fenceMatch) {
      fence = fence === null ? fenceMatch[1] || 'text' : null;
      return;
    }
    if (fence !== null) {
      if (!['sh', 'bash', 'shell', 'console'].includes(fence)) return;
      const l = raw.trim();
      if (!l || l.startsWith('#')) return;
      if (!pending) pendingLine = i + 1;
      if (l.endsWith('\\')) {
        pending += l.slice(0, -1).trim() + ' ';
        return;
      }
      const full = (pending + l).trim();
      pending = '';
      for (const part of full.split(/\s+&&\s+/)) out.push({ line: pendingLine, command: part.trim(), inline: false });
      return;
    }
    for (const m of raw.matchAll(/`((?:npm|npx|node|python3?|pip|tensorboard) [^`]*|npm \w+)`/g)) {
      out.push({ line: i + 1, command: m[1].trim(), inline: true });
    }
  });
  return out;
}

interface Rule {
  readonly match: RegExp;
  /** Appended to the command: the tiny budget. */
  readonly append?: string;
  readonly env?: Record<string, string>;
  /** Why the command is not run here. */
  readonly skip?: string;
  readonly timeoutMs?: number;
}

const ONE_UPDATE = '--max_steps 1 --eval_limit 2 --save_steps 1';
const FEW_COMPARISONS = '--limit 4 --set eval.bootstrap_samples=20';

/** First match wins. */
export const RULES: Rule[] = [
  { match: /^npm ci$/, skip: '.ci/run runs `npm ci` on a fresh clone before this suite' },
  { match: /^npm test$/, skip: 'this test is part of `npm test`' },
  {
    match: /^npm start$/,
    append: '-- --set train.max_steps=1 --set train.eval_limit=2 --set eval.limit=4 --set eval.bootstrap_samples=20',
    timeoutMs: 900_000,
  },
  { match: /^npx nx run (train|train2):run -- /, append: ONE_UPDATE },
  { match: /^npx nx run eval:run -- /, append: FEW_COMPARISONS },
  { match: /^npx nx run mine:run -- /, append: '--users 6 --orders 1' },
  { match: /^npx nx run rank:(export-user|run) -- / },
  { match: /^npx nx run serve:run -- /, skip: 'the service runs until it is stopped; apps/serve/test runs it as a process (SIGTERM included) and apps/serve/test/server.spec.ts over HTTP' },
  { match: /^curl /, skip: 'it talks to the service started above; apps/serve/test/server.spec.ts sends the same multipart request over loopback' },
  { match: /^npx nx graph --file=\S+$/ },
  { match: /^node tools\/scripts\/run-ts\.js plugins\/dataset-pickapic\/src\/cli\.ts /, timeoutMs: 300_000 },
  { match: /^node tools\/scripts\/run-ts\.js plugins\/dataset-pickapic\/bench\/ceilings\.ts/ },
  // Quick mode: every section at its smallest size (tiny preset, one repetition), no bench-results.json
  // written; USERPREF_TORCH_PYTHON is ignored there, so no PyTorch is needed.
  { match: /^npm run bench\b/, env: { USERPREF_BENCH_QUICK: '1' }, timeoutMs: 600_000 },
  { match: /^tensorboard /, skip: 'TensorBoard is a separate Python tool; packages/training/test/tensorboard.spec.ts checks the event files it reads' },
];

export function ruleFor(command: string): Rule | undefined {
  return RULES.find((r) => r.match.test(command));
}

describe('README command extraction', () => {
  it('takes sh lines (joined continuations, split &&) and inline command spans, not json or prose', () => {
    const md = ['Run `npm start` then:', '```sh', '# a comment', 'npm ci && npm test', 'npx nx run a:run -- \\', '  --x 1', '```', '```json', '{"npm": "ci"}', '```', 'not `a command`.'].join('\n');
    expect(readmeCommands(md)).toEqual([
      { line: 1, command: 'npm start', inline: true },
      { line: 4, command: 'npm ci', inline: false },
      { line: 4, command: 'npm test', inline: false },
      { line: 5, command: 'npx nx run a:run -- --x 1', inline: false },
    ]);
  });
});

describe('SLOW: every README command, as written, on a fresh copy of the workspace', () => {
  const commands = readmeCommands(fs.readFileSync(path.join(repo, 'README.md'), 'utf8'));
  // One run per distinct command, in README order (prose often names a command shown above it).
  const seen = new Set<string>();
  const unique = commands.filter((c) => (seen.has(c.command) ? false : (seen.add(c.command), true)));
  let sandbox: string;

  beforeAll(() => {
    sandbox = fs.mkdtempSync(path.join(os.tmpdir(), 'userpref-readme-'));
    const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: repo, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of files) {
      const from = path.join(repo, f);
      if (!fs.existsSync(from)) continue; // deleted in the work tree, not yet committed
      fs.mkdirSync(path.dirname(path.join(sandbox, f)), { recursive: true });
      fs.copyFileSync(from, path.join(sandbox, f));
    }
    fs.symlinkSync(path.join(repo, 'node_modules'), path.join(sandbox, 'node_modules'));
  });

  afterAll(() => {
    if (sandbox && !process.env.KEEP_README_SANDBOX) fs.rmSync(sandbox, { recursive: true, force: true });
  });

  it('finds the quick start and the runners', () => {
    const all = commands.map((c) => c.command);
    expect(all).toEqual(expect.arrayContaining(['npm ci', 'npm start', 'npm test']));
    for (const app of ['train', 'train2', 'eval']) expect(all.some((c) => c.startsWith(`npx nx run ${app}:run`))).toBe(true);
  });

  it('has a rule for every command', () => {
    const unknown = commands.filter((c) => !ruleFor(c.command)).map((c) => `README.md:${c.line}: ${c.command}`);
    expect(unknown).toEqual([]);
  });

  it('writes no placeholder into a command', () => {
    const placeholders = commands.filter((c) => /<[^>]+>|checkpoint-N\b/.test(c.command) && !ruleFor(c.command)?.skip).map((c) => `README.md:${c.line}: ${c.command}`);
    expect(placeholders).toEqual([]);
  });

  for (const c of unique) {
    const rule = ruleFor(c.command);
    const title = `README.md:${c.line}: ${c.command}`;
    if (!rule) continue; // reported by 'has a rule for every command'
    if (rule.skip) {
      it.skip(`${title} (not run: ${rule.skip})`, () => undefined);
      continue;
    }
    it(
      title,
      () => {
        const full = rule.append ? `${c.command} ${rule.append}` : c.command;
        const r = spawnSync('bash', ['-c', full], {
          cwd: sandbox,
          encoding: 'utf8',
          env: { ...process.env, ...rule.env, CI: '1', NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_SKIP_NX_CACHE: 'true', FORCE_COLOR: '0' },
          timeout: rule.timeoutMs ?? 600_000,
          maxBuffer: 64 * 1024 * 1024,
        });
        if (r.status !== 0) throw new Error(`${full}\nexited ${r.status ?? r.signal}:\n${(r.stdout ?? '').slice(-2000)}\n${(r.stderr ?? '').slice(-4000)}`);
        expect(r.stderr).not.toMatch(/^error: /m);
      },
      (rule.timeoutMs ?? 600_000) + 30_000,
    );
  }
});
