/**
 * Compiles one package's `src/` to CommonJS + .d.ts with the workspace's tsconfig.base.json.
 * Other workspace packages are type-checked against their BUILT declarations (dist), not their
 * sources: that is what a consumer of the published packages sees, so a type that only exists
 * in a source file and not in the emitted .d.ts fails here instead of in a user's project.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

export interface CompileOptions {
  workspaceRoot: string;
  /** Absolute package folder (contains package.json and src/). */
  packageDir: string;
  /** Absolute output folder (emptied first). */
  outDir: string;
  /** npm name -> absolute path of that package's built index.d.ts. */
  builtDeclarations: Record<string, string>;
}

export interface CompileResult {
  /** Emitted files, relative to outDir. */
  files: string[];
  /** Non-TypeScript files copied from src/ (JSON data, wasm, ...), relative to outDir. */
  assets: string[];
}

export class CompileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CompileError';
  }
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const isTest = (f: string) => /\.(spec|test)\.ts$/.test(f) || f.split(path.sep).includes('__tests__');

export function compilePackage(opts: CompileOptions): CompileResult {
  const srcDir = path.join(opts.packageDir, 'src');
  if (!fs.existsSync(path.join(srcDir, 'index.ts'))) throw new CompileError(`${srcDir}/index.ts does not exist: a package's public face is src/index.ts`);
  const baseFile = path.join(opts.workspaceRoot, 'tsconfig.base.json');
  const read = ts.readConfigFile(baseFile, ts.sys.readFile);
  if (read.error) throw new CompileError(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, opts.workspaceRoot, undefined, baseFile);
  const all = walk(srcDir).filter((f) => !isTest(f));
  const rootNames = all.filter((f) => f.endsWith('.ts'));
  const paths: Record<string, string[]> = {};
  for (const [name, dts] of Object.entries(opts.builtDeclarations)) paths[name] = [dts];
  const options: ts.CompilerOptions = {
    ...parsed.options,
    noEmit: false,
    declaration: true,
    sourceMap: true,
    // The published package has no src/ folder of .ts files: keep the sources inside the maps so
    // stack traces and debuggers still show them.
    inlineSources: true,
    rootDir: srcDir,
    outDir: opts.outDir,
    // Test-only ambient types are not part of a published package.
    types: ['node'],
    paths,
    tsBuildInfoFile: undefined,
    incremental: false,
    composite: false,
  };
  fs.rmSync(opts.outDir, { recursive: true, force: true });
  fs.mkdirSync(opts.outDir, { recursive: true });
  const host = ts.createCompilerHost(options);
  const program = ts.createProgram({ rootNames, options, host });
  const emitted: string[] = [];
  const diagnostics = [...ts.getPreEmitDiagnostics(program)];
  if (!diagnostics.some((d) => d.category === ts.DiagnosticCategory.Error)) {
    const result = program.emit(undefined, (file, text, bom) => {
      host.writeFile(file, text, bom);
      emitted.push(path.relative(opts.outDir, file));
    });
    diagnostics.push(...result.diagnostics);
  }
  const errors = diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) {
    const text = ts.formatDiagnostics(errors, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => opts.workspaceRoot,
      getNewLine: () => '\n',
    });
    throw new CompileError(`${path.relative(opts.workspaceRoot, opts.packageDir)}: ${errors.length} TypeScript error(s)\n${text}`);
  }
  const assets: string[] = [];
  for (const f of all) {
    // Hand-written declarations are inputs of the program but never emitted: copy them.
    if (f.endsWith('.ts') && !f.endsWith('.d.ts')) continue;
    const rel = path.relative(srcDir, f);
    fs.mkdirSync(path.dirname(path.join(opts.outDir, rel)), { recursive: true });
    fs.copyFileSync(f, path.join(opts.outDir, rel));
    assets.push(rel);
  }
  return { files: emitted.sort(), assets };
}
