/**
 * Pre-trains a checkpoint as a stand-in for a pretrained base (see pretrain.ts):
 *
 *   npx nx run pretrain:run -- --base <ckpt dir> --data <processed dataset dir>
 *        --out <new ckpt dir> [--steps 200] [--lr 1e-3] [--batch 4] [--grad-accum 1] [--seed 0] [--ref-pair-num 8]
 *        [--weight-decay 0.01] [--dtype F32|F16|BF16] [--image-size 64] [--max-prompt-len 100]
 *        [--eval-data <processed dir>] [--eval-split validation] [--eval-limit 100] [--eval-every 0]
 *        [--eval-ref-pairs 8,0] [--eval-seed 42] [--validation-limit 64] [--run-dir <dir>]
 *
 * The pre-training users must not be the ones evaluated later: make them with another synthpick
 * seed than the demo's 42, e.g.
 *   node tools/scripts/run-ts.js plugins/dataset-pickapic/src/cli.ts synth --seed 7 \
 *        --out data/synthpick-pretrain/raw --import data/synthpick-pretrain/processed
 * Runs on the cpu device (wasm, one thread); same options -> same bytes.
 */
import { createLogger } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';
import { USAGE, UsageError, parsePretrainArgs } from './args';
import { pretrainIdefics2, type PretrainOptions } from './pretrain';

async function main(): Promise<number> {
  let options: PretrainOptions;
  try {
    options = parsePretrainArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message) console.error(`error: ${e.message}`);
    console.error(USAGE);
    return 2;
  }
  const logger = createLogger({});
  await initRuntime({ device: 'cpu', log: (m, f) => logger.info(m, f) });
  const started = Date.now();
  const r = await pretrainIdefics2({ ...options, logger });
  const curve = r.evaluations.map((e) => `  step ${String(e.step).padStart(5)}  refs ${e.refPairs}  accuracy ${(100 * e.accuracy).toFixed(1)}% (n ${e.n}, 95% CI ${(100 * e.ci95[0]).toFixed(1)}-${(100 * e.ci95[1]).toFixed(1)})`);
  console.log(
    [
      `pre-trained ${r.trainedParameters.toLocaleString('en-US')} parameters for ${r.steps} updates: loss ${r.losses[0]?.toFixed(4)} -> ${r.losses[r.losses.length - 1]?.toFixed(4)}, ` +
        `${r.secondsPerStep.toFixed(2)} s per update (${r.trainSeconds.toFixed(0)} s training, ${((Date.now() - started) / 1000).toFixed(0)} s in all)`,
      ...(r.validation ? [`accuracy on the pre-training data's validation split: ${(100 * r.validation.accuracy).toFixed(1)}% (n ${r.validation.n})`] : []),
      ...(curve.length ? ['accuracy of the base without LoRA on the evaluation data:', ...curve] : []),
      `wrote ${r.out} (${r.files.length} files)`,
    ].join('\n'),
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  },
);
