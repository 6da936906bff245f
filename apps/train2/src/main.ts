/** Stage 2 runner: preference tokens on top of the stage-1 adapter (SPEC §5). */
import * as path from 'path';
import { STAGE2_FLAGS, TRAIN_FLAGS, parseRun, requireParts, runMain, setupRun, trainOptionsFrom } from '@userpref/cli';
import { Trainer } from '@userpref/training';

runMain(async () => {
  const { config, resume } = await parseRun(
    { name: 'train2', description: 'Stage 2: train preference tokens on top of a stage-1 LoRA adapter (--lora_path).', flags: [...TRAIN_FLAGS, ...STAGE2_FLAGS], defaultConfig: path.join(__dirname, '..', 'config', 'default.json') },
    process.argv.slice(2),
  );
  const { assembly, logger } = await setupRun('train2', config);
  const parts = requireParts(assembly, ['backbone', 'dataset', 'tokens'], 'train2');
  const result = await new Trainer({ backbone: parts.backbone, dataset: parts.dataset, losses: parts.losses, tokens: parts.tokens, logger }, trainOptionsFrom(config, 2, resume)).run();
  logger.info('stage 2 finished', { steps: result.steps, checkpoint: result.finalCheckpoint, tokens: path.join(result.finalCheckpoint, 'tokens'), validationAccuracy: result.validation?.accuracy });
});
