/**
 * Writes a random-initialised IDEFICS2 checkpoint in the Hugging Face layout of
 * HuggingFaceM4/idefics2-8b (config.json, model.safetensors or shards + index, tokenizer and
 * processor files), for tests and the CPU demo:
 *
 *   npx nx run checkpoint:run -- --preset tiny|small --out <dir>
 *        [--seed N] [--dtype F32|F16|BF16] [--shard-bytes N]
 *
 * Presets (idefics2-8b: vision 1152 x 27 layers, patch 14; perceiver 64 latents x 3 layers;
 * Mistral 4096 x 32 layers, 32 heads / 8 KV heads; vocab 32003; images 378..980 px):
 *
 *   preset | vision (d x layers, heads, patch)  | perceiver (latents x depth, heads x dim, kv) | text (d x layers, heads/kv, ffn) | vocab | image px (short..long) | params
 *   tiny   | 32 x 2, 2 heads, patch 4, 8x8 grid | 8 x 2, 4 x 16, 2 kv                          | 64 x 2, 4/2, 128                 | 400   | 28..32                 | 286,240
 *   small  | 64 x 2, 4 heads, patch 8, 8x8 grid | 16 x 2, 4 x 32, 2 kv                         | 128 x 2, 4/2, 384                | 400   | 56..64                 | 1,205,568
 *
 * FLOPs of `small` per example with 8 reference pairs (17 images; 16 latents -> 18 tokens per
 * image). Measured: with prompts cut to 60 characters the sequence is T = 1,237 tokens (the tiny
 * tokenizer spends ~1 token per 2.5 prompt characters).
 *   text model: 2 x 197k weights per layer x 2 layers = 0.79 MFLOP per token, plus attention
 *     4 x T x d per layer = 1.27 MFLOP per token at T = 1,237 -> 2.5 GFLOP per sequence;
 *   connector (LoRA-adapted, so recomputed every step): modality projection 17 x 64 patches x
 *     2 x 98k = 0.21 GFLOP, perceiver 2 layers x 17 images x ~10.6 MFLOP = 0.36 GFLOP;
 *   vision tower (frozen: compute once per image and cache): 17 x 64 x 2 x 99k = 0.22 GFLOP.
 *   Forward ~3.1 GFLOP per sequence. Training (forward + backward ~3x), both target sequences
 *   with the shared prefix computed once: ~9.5 GFLOP per example (~19 without prefix sharing).
 *   300 examples x 1 epoch ~2.8 TFLOP ~3 minutes at 15 GFLOP/s (peak; expect more in practice).
 */
import { writeIdefics2Checkpoint } from '@userpref/backbone-idefics2';
import type { PresetName, WeightDtype } from '@userpref/backbone-idefics2';

function usage(message?: string): never {
  if (message) console.error(`error: ${message}`);
  console.error('usage: checkpoint --preset tiny|small --out <dir> [--seed N] [--dtype F32|F16|BF16] [--shard-bytes N]');
  process.exit(2);
}

function parseArgs(argv: string[]): { preset: PresetName; out: string; seed: number; dtype: WeightDtype; shardBytes?: number } {
  const opts: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') usage();
    if (!a.startsWith('--')) usage(`unexpected argument '${a}'`);
    const [key, inline] = a.slice(2).split('=', 2);
    const value = inline ?? argv[++i];
    if (value === undefined) usage(`--${key} needs a value`);
    opts[key] = value;
  }
  for (const k of Object.keys(opts)) if (!['preset', 'out', 'seed', 'dtype', 'shard-bytes'].includes(k)) usage(`unknown option --${k}`);
  if (opts.preset !== 'tiny' && opts.preset !== 'small') usage(`--preset must be tiny or small, got '${opts.preset ?? ''}'`);
  if (!opts.out) usage('--out is required');
  const seed = opts.seed === undefined ? 0 : Number(opts.seed);
  if (!Number.isInteger(seed)) usage(`--seed must be an integer, got '${opts.seed}'`);
  const dtype = (opts.dtype ?? 'F32').toUpperCase();
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') usage(`--dtype must be F32, F16 or BF16, got '${opts.dtype}'`);
  let shardBytes: number | undefined;
  if (opts['shard-bytes'] !== undefined) {
    shardBytes = Number(opts['shard-bytes']);
    if (!Number.isInteger(shardBytes) || shardBytes <= 0) usage(`--shard-bytes must be a positive integer, got '${opts['shard-bytes']}'`);
  }
  return { preset: opts.preset, out: opts.out, seed, dtype, shardBytes };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const started = Date.now();
  let lastReport = 0;
  const result = await writeIdefics2Checkpoint({
    preset: args.preset,
    outDir: args.out,
    seed: args.seed,
    dtype: args.dtype,
    shardBytes: args.shardBytes,
    onTensor: (done, total) => {
      const now = Date.now();
      if (now - lastReport > 1000 || done === total) {
        lastReport = now;
        process.stderr.write(`\rinitialising weights: ${done}/${total} tensors`);
        if (done === total) process.stderr.write('\n');
      }
    },
  });
  console.log(
    `wrote ${args.preset} IDEFICS2 checkpoint to ${result.dir}: ${result.parameters.toLocaleString('en-US')} parameters in ${result.tensors} tensors ` +
      `(${args.dtype}, seed ${args.seed}, vocab ${result.vocabSize}), ${result.files.length} files, ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
