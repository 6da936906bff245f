/** Stage 1 runner: LoRA on the backbone with the configured losses (SPEC §3-§4). */
import * as path from 'path';
import { TRAIN_FLAGS, parseRun, requireParts, runMain, setupRun, trainOptionsFrom } from '@userpref/cli';
import { Trainer } from '@userpref/training';

runMain(async () => {
  const { config, resume } = await parseRun(
    { name: 'train', description: 'Stage 1: train the LoRA adapter with the base and contrastive preference losses.', flags: TRAIN_FLAGS, defaultConfig: path.join(__dirname, '..', 'config', 'default.json') },
    process.argv.slice(2),
  );
  const { assembly, logger } = await setupRun('train', config);
  const parts = requireParts(assembly, ['backbone', 'dataset'], 'train');
  const result = await new Trainer({ backbone: parts.backbone, dataset: parts.dataset, losses: parts.losses, logger }, trainOptionsFrom(config, 1, resume)).run();
  logger.info('stage 1 finished', { steps: result.steps, checkpoint: result.finalCheckpoint, adapter: path.join(result.finalCheckpoint, 'adapter'), validationAccuracy: result.validation?.accuracy });
});
