/**
 * What a built package pulls in at run time (require / import()) and at type level (.d.ts
 * imports). Every bare specifier must be declared by the published package.json, or the package
 * installs fine and then fails in a user's project with "Cannot find module".
 */
import * as fs from 'fs';
import { builtinModules } from 'module';
import * as path from 'path';

export interface ImportSite {
  /** npm package name (`@scope/name` or `name`). */
  readonly packageName: string;
  readonly specifier: string;
  /** File relative to the package output folder. */
  readonly file: string;
  readonly line: number;
}

const builtins = new Set(builtinModules);

// Comments are stripped first so that an example in a doc comment is not taken for an import.
const commentRe = /\/\*[\s\S]*?\*\/|(^|[^:'"`\\])\/\/.*$/gm;
const specifierRe = /\b(?:require|import)\s*\(\s*(['"])([^'"]+)\1|\bfrom\s+(['"])([^'"]+)\3|^\s*import\s+(['"])([^'"]+)\5/gm;

/** `@scope/name/sub/path` -> `@scope/name`; `name/sub` -> `name`; relative and builtins -> null. */
export function packageOf(specifier: string): string | null {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return null;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  if (builtins.has(name) || builtins.has(specifier)) return null;
  return name;
}

export function collectImports(outDir: string): ImportSite[] {
  const sites: ImportSite[] = [];
  const visit = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') visit(p);
        continue;
      }
      if (!/\.(c?js|d\.ts)$/.test(e.name)) continue;
      const raw = fs.readFileSync(p, 'utf8');
      // Keep line numbers: replace each comment with as many newlines as it spanned.
      const text = raw.replace(commentRe, (m, lead: string | undefined) => (lead ?? '') + m.slice((lead ?? '').length).replace(/[^\n]/g, ''));
      for (const m of text.matchAll(specifierRe)) {
        const specifier = m[2] ?? m[4] ?? m[6];
        const name = packageOf(specifier);
        if (!name) continue;
        const line = text.slice(0, m.index).split('\n').length;
        sites.push({ packageName: name, specifier, file: path.relative(outDir, p), line });
      }
    }
  };
  visit(outDir);
  return sites;
}

/** Import sites whose package is not declared (self-references are allowed). */
export function undeclaredImports(sites: readonly ImportSite[], self: string, declared: ReadonlySet<string>): ImportSite[] {
  return sites.filter((s) => s.packageName !== self && !declared.has(s.packageName));
}
