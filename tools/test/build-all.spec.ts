/**
 * Every publishable package builds and packs: `npm run build` (Nx's inferred `build` target of
 * every project under packages/ and plugins/, in dependency order, without the cache) must
 * succeed, and `npm pack` of each built folder must hold the compiled code, its declarations, the
 * generated README and the LICENSE, and no TypeScript sources or tests. A package that cannot be
 * built or published fails `npm test`, not a user's `npm publish`.
 *
 * SLOW (~1-2 min): one build of every package.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

const repo = path.resolve(__dirname, '..', '..');

/** Project roots with a build target: packages/* and plugins/* that have package.json and src/index.ts. */
function publishableRoots(): string[] {
  const roots: string[] = [];
  for (const group of ['packages', 'plugins']) {
    for (const name of fs.readdirSync(path.join(repo, group)).sort()) {
      const root = `${group}/${name}`;
      if (fs.existsSync(path.join(repo, root, 'package.json')) && fs.existsSync(path.join(repo, root, 'src', 'index.ts'))) roots.push(root);
    }
  }
  return roots;
}

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, {
      cwd: repo,
      encoding: 'utf8',
      stdio: 'pipe',
      env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_SKIP_NX_CACHE: 'true', FORCE_COLOR: '0' },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${(err.stdout ?? '').slice(-6000)}\n${(err.stderr ?? '').slice(-3000)}`);
  }
}

it('SLOW: npm run build builds every package and plugin, and each built package packs', () => {
  const roots = publishableRoots();
  expect(roots).toEqual(expect.arrayContaining(['packages/core', 'plugins/backbone-idefics2', 'plugins/loss-preference', 'plugins/preference-tokens', 'plugins/dataset-pickapic']));
  run('npm', ['run', 'build', '--', '--outputStyle=static', '--skipNxCache']);
  for (const root of roots) {
    const dir = path.join(repo, 'dist', root);
    const source = JSON.parse(fs.readFileSync(path.join(repo, root, 'package.json'), 'utf8')) as { name: string; version: string };
    const packed = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--loglevel=error', dir])) as Array<{ name: string; version: string; files: Array<{ path: string }> }>;
    expect({ root, name: packed[0].name, version: packed[0].version }).toEqual({ root, name: source.name, version: source.version });
    const files = packed[0].files.map((f) => f.path);
    expect({ root, missing: ['index.js', 'index.d.ts', 'package.json', 'README.md', 'LICENSE'].filter((f) => !files.includes(f)) }).toEqual({ root, missing: [] });
    expect({ root, sources: files.filter((f) => (f.endsWith('.ts') && !f.endsWith('.d.ts')) || /\.spec\.|(^|\/)test\//.test(f)) }).toEqual({ root, sources: [] });
  }
}, 600_000);
