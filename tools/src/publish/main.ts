/**
 * `node tools/scripts/run-ts.js tools/src/publish/main.ts <projectRoot> [--dist <dir>]`: builds
 * one package into dist/<projectRoot>. The Nx `build` target inferred by tools/src/nx-plugin
 * runs exactly this, after building the package's workspace dependencies.
 */
import * as path from 'path';
import { buildPackage, BuildError } from './build-package';
import { CompileError } from './compile';

function usage(): never {
  process.stderr.write('usage: run-ts.js tools/src/publish/main.ts <projectRoot> [--dist <dir>]\n  e.g. tools/src/publish/main.ts plugins/loss-preference\n');
  process.exit(2);
}

function main(argv: string[]): void {
  let projectRoot: string | undefined;
  let distRoot: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--dist') distRoot = argv[++i] ?? usage();
    else if (a === '--help' || a === '-h') usage();
    else if (a.startsWith('-')) {
      process.stderr.write(`unknown flag ${a}\n`);
      usage();
    } else if (!projectRoot) projectRoot = a;
    else usage();
  }
  if (!projectRoot) usage();
  const workspaceRoot = path.resolve(__dirname, '..', '..', '..');
  const rel = path.isAbsolute(projectRoot) ? path.relative(workspaceRoot, projectRoot) : projectRoot;
  buildPackage({ workspaceRoot, projectRoot: rel, distRoot: distRoot ? path.resolve(distRoot) : undefined });
}

try {
  main(process.argv.slice(2));
} catch (e) {
  if (e instanceof BuildError || e instanceof CompileError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
