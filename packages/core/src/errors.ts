/**
 * Failures a user causes and can fix (a missing file, a bad option, a damaged input) are
 * "expected": the runners print them as one line, without a stack trace (`--verbose` adds it).
 * Anything else is a bug and keeps its stack.
 *
 * Packages that do not depend on core (safetensors, pickle, runtime) mark their error classes the
 * same way, with a property `expected = true`: the check below is structural, so no package has to
 * import core for its errors to be printed cleanly.
 */
import { promises as fs } from 'fs';
import * as nodePath from 'path';

/** What a missing path was supposed to hold; the runners say which command makes each kind. */
export type InputKind = 'checkpoint' | 'dataset' | 'adapter' | 'tokens' | 'file';

/** A path that a run needs does not exist (or lacks the file that makes it what it should be). */
export class MissingInputError extends Error {
  readonly expected = true;
  constructor(
    readonly kind: InputKind,
    readonly path: string,
    /** What is missing there, e.g. "no config.json"; shown after the path. */
    readonly detail?: string,
  ) {
    super(`${LABELS[kind]} not found: ${path}${detail ? ` (${detail})` : ''}`);
    this.name = 'MissingInputError';
  }
}

const LABELS: Record<InputKind, string> = {
  checkpoint: 'backbone checkpoint',
  dataset: 'processed dataset',
  adapter: 'LoRA adapter',
  tokens: 'preference tokens',
  file: 'file',
};

/** True for errors a user can act on from their message alone (see the header). */
export function isExpectedError(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  if ((err as { expected?: unknown }).expected === true) return true;
  return err.name === 'ConfigError' || err.name === 'DeviceUnavailableError';
}

/** Throws MissingInputError unless `file` exists (a file or a directory). */
export async function requirePath(kind: InputKind, dir: string, file?: string): Promise<void> {
  try {
    await fs.stat(dir);
  } catch {
    throw new MissingInputError(kind, dir);
  }
  if (file === undefined) return;
  try {
    await fs.stat(nodePath.join(dir, file));
  } catch {
    throw new MissingInputError(kind, dir, `no ${file} in it`);
  }
}
