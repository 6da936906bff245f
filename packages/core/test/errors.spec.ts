import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ConfigError, MissingInputError, isExpectedError, requirePath, setPath } from '../src';

describe('expected errors', () => {
  it('marks user-facing failures, by class or by the structural `expected` flag', () => {
    expect(isExpectedError(new ConfigError('bad option'))).toBe(true);
    expect(isExpectedError(new MissingInputError('adapter', '/x'))).toBe(true);
    class ForeignFormatError extends Error {
      readonly expected = true;
    }
    expect(isExpectedError(new ForeignFormatError('damaged file'))).toBe(true);
    expect(isExpectedError(new TypeError('x is undefined'))).toBe(false);
    expect(isExpectedError('a string')).toBe(false);
  });

  it('requirePath names the path and the file that is missing there', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'userpref-core-'));
    try {
      await expect(requirePath('checkpoint', path.join(dir, 'nope'), 'config.json')).rejects.toThrow(`backbone checkpoint not found: ${path.join(dir, 'nope')}`);
      await expect(requirePath('checkpoint', dir, 'config.json')).rejects.toThrow(`backbone checkpoint not found: ${dir} (no config.json in it)`);
      await fs.writeFile(path.join(dir, 'config.json'), '{}');
      await expect(requirePath('checkpoint', dir, 'config.json')).resolves.toBeUndefined();
      const e = await requirePath('tokens', path.join(dir, 'nope')).catch((x: MissingInputError) => x);
      expect(e).toBeInstanceOf(MissingInputError);
      expect((e as MissingInputError).kind).toBe('tokens');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('setPath', () => {
  it('creates an array where the next key is an index', () => {
    const c: Record<string, unknown> = { eval: {} };
    setPath(c, 'eval.models.0.tokens', '/t');
    expect(c).toEqual({ eval: { models: [{ tokens: '/t' }] } });
  });

  it('sets inside an existing array and creates objects elsewhere', () => {
    const c: Record<string, unknown> = { plugins: { losses: [{ name: 'base' }, { name: 'contrastive' }] } };
    setPath(c, 'plugins.losses.1.weight', 0.5);
    setPath(c, 'train.lr', 1e-4);
    expect(c).toEqual({ plugins: { losses: [{ name: 'base' }, { name: 'contrastive', weight: 0.5 }] }, train: { lr: 1e-4 } });
  });
});
