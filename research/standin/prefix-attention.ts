/**
 * Research measurement (README, "Stage 2 adds nothing measurable"): how much attention the
 * preference tokens get in a trained stage-2 model. For the first --n examples of a split, per
 * text layer: the attention mass (mean over heads) that the last real position, and the target
 * image's rows, give the prefix positions, next to the share a uniform attention would give.
 *
 *   node tools/scripts/run-ts.js research/standin/prefix-attention.ts --config apps/demo/config/demo.json \
 *     --lora_path runs/demo/stage1/checkpoint-40/adapter --tokens_path runs/demo/stage2/checkpoint-20/tokens [--n 16] [--split test]
 */
import { tmpdir } from 'os';
import { EVAL_FLAGS, parseRun, requireParts, setupRun } from '@userpref/cli';
import type { Idefics2Backbone } from '@userpref/backbone-idefics2';
import type { PreferenceExample, SplitName } from '@userpref/core';

async function main(argv: string[]): Promise<void> {
  const take = (flag: string, def: string): string => {
    const i = argv.indexOf(`--${flag}`);
    if (i < 0) return def;
    const v = argv[i + 1];
    argv.splice(i, 2);
    return v;
  };
  const n = Number(take('n', '16'));
  const splitName = take('split', 'test') as SplitName;
  const { config } = await parseRun({ name: 'eval', description: 'prefix attention', flags: EVAL_FLAGS, defaultConfig: 'apps/demo/config/demo.json' }, argv);
  const tokensDir = config.eval?.models[0]?.tokens;
  if (!tokensDir) throw new Error('--tokens_path is required');
  const { assembly } = await setupRun('eval', { ...config, out: tmpdir(), exp_name: 'userpref-prefix-attention' });
  const parts = requireParts(assembly, ['backbone', 'dataset', 'tokens'], 'prefix-attention');
  parts.tokens.build(parts.backbone.textHiddenSize);
  await parts.tokens.load(tokensDir);
  const probe = await (parts.backbone as Idefics2Backbone).attentionProbe();
  const split = parts.dataset.split(splitName);
  const examples: PreferenceExample[] = [];
  for (let i = 0; i < Math.min(n, split.size); i++) examples.push(await split.get(i));
  const fwd = await probe.forward(examples, parts.tokens, [...Array(probe.numLayers).keys()]);
  try {
    const P = fwd.prefixLength;
    const lastOf = examples.map((ex) => P + probe.processor.encodeExample(ex).inputIds.length - 1);
    for (let l = 0; l < probe.numLayers; l++) {
      const a = fwd.attentions[l]!;
      const [B, H, Tq, Tk] = a.shape;
      const d = a.dataSync();
      const at = (b: number, h: number, q: number, k: number) => d[((b * H + h) * Tq + q) * Tk + k];
      let fromLast = 0;
      let fromImage = 0;
      let uniform = 0;
      for (let b = 0; b < B; b++) {
        uniform += P / (lastOf[b] + 1);
        const r = fwd.rows[b];
        for (let h = 0; h < H; h++) {
          for (let k = 0; k < P; k++) {
            fromLast += at(b, h, lastOf[b], k);
            for (let q = r.queryStart; q < r.queryStart + r.queryCount; q++) fromImage += at(b, h, q, k) / r.queryCount;
          }
        }
      }
      const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
      console.log(`layer ${l}: to the ${P} tokens from the last position ${pct(fromLast / (B * H))}, from the target image rows ${pct(fromImage / (B * H))}; uniform share ${pct(uniform / B)}`);
    }
  } finally {
    fwd.dispose();
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(e.stack ?? e.message);
  process.exit(1);
});
