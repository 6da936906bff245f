/** Flags of the pretrain app (src/main.ts) to PretrainOptions (kept apart from main.ts, which runs on import). */
import type { PretrainOptions } from './pretrain';

export const USAGE =
  'usage: pretrain --base <ckpt dir> --data <processed dataset dir> --out <new ckpt dir> [--steps N] [--lr X] [--batch B] [--grad-accum N] [--seed S] [--ref-pair-num K]\n' +
  '              [--weight-decay X] [--dtype F32|F16|BF16] [--image-size N] [--max-prompt-len N|none] [--eval-data <dir>] [--eval-split S]\n' +
  '              [--eval-limit N] [--eval-every N] [--eval-ref-pairs 8,0] [--eval-seed S] [--validation-limit N] [--run-dir <dir>]\n' +
  '              [--init checkpoint|fan-in]';

export class UsageError extends Error {}

const KNOWN = ['base', 'data', 'out', 'steps', 'lr', 'batch', 'grad-accum', 'seed', 'ref-pair-num', 'weight-decay', 'dtype', 'image-size', 'max-prompt-len', 'eval-data', 'eval-split', 'eval-limit', 'eval-every', 'eval-ref-pairs', 'eval-seed', 'validation-limit', 'run-dir', 'init'];

export function parsePretrainArgs(argv: string[]): PretrainOptions {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') throw new UsageError('');
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}'`);
    const [key, inline] = a.slice(2).split(/=(.*)/s);
    if (!KNOWN.includes(key)) throw new UsageError(`unknown option --${key}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${key} needs a value`);
    flags.set(key, value);
  }
  const num = (key: string, int: boolean): number | undefined => {
    const v = flags.get(key);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`--${key} must be ${int ? 'an integer' : 'a number'}, got '${v}'`);
    return n;
  };
  for (const k of ['base', 'data', 'out']) if (!flags.get(k)) throw new UsageError(`--${k} is required`);
  const dtype = (flags.get('dtype') ?? 'F32').toUpperCase();
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') throw new UsageError(`--dtype must be F32, F16 or BF16, got '${flags.get('dtype')}'`);
  const split = flags.get('eval-split') ?? 'validation';
  if (split !== 'train' && split !== 'validation' && split !== 'test') throw new UsageError(`--eval-split must be train, validation or test, got '${split}'`);
  const init = flags.get('init') ?? 'checkpoint';
  if (init !== 'checkpoint' && init !== 'fan-in') throw new UsageError(`--init must be checkpoint or fan-in, got '${init}'`);
  const mpl = flags.get('max-prompt-len');
  let maxPromptLen: number | null | undefined;
  if (mpl === 'none') maxPromptLen = null;
  else if (mpl !== undefined) maxPromptLen = num('max-prompt-len', true);
  let evalRefPairs: number[] | undefined;
  const erp = flags.get('eval-ref-pairs');
  if (erp !== undefined) {
    evalRefPairs = erp.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`--eval-ref-pairs takes integers >= 0 separated by commas, got '${erp}'`);
      return n;
    });
  }
  return {
    base: flags.get('base')!,
    data: flags.get('data')!,
    out: flags.get('out')!,
    steps: num('steps', true),
    lr: num('lr', false),
    batch: num('batch', true),
    gradAccum: num('grad-accum', true),
    seed: num('seed', true),
    refPairNum: num('ref-pair-num', true),
    weightDecay: num('weight-decay', false),
    dtype,
    imageSize: num('image-size', true),
    maxPromptLen,
    evalData: flags.get('eval-data'),
    evalSplit: split,
    evalLimit: num('eval-limit', true),
    evalEvery: num('eval-every', true),
    evalRefPairs,
    evalSeed: num('eval-seed', true),
    validationLimit: num('validation-limit', true),
    runDir: flags.get('run-dir'),
    init,
  };
}

