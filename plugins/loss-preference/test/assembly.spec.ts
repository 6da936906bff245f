import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { assemble, memoryLogger, type PluginsConfig, type WeightedLoss } from '@userpref/core';
import { initRuntime } from '@userpref/runtime';

/*
 * The objective is whatever the config says: the same logits give different objective values
 * under different configs, with no code change. The package is named by its folder, as a run
 * config outside the repository would.
 *
 * Logits (vocab 3, "+" = 2, "-" = 0): z(pos) = [0, ln 2, ln 3], z(neg) = [0, ln 3, ln 4].
 * From the hand derivation in losses.spec.ts: L_base = 2 ln 2, L_cp = ln(14/3), L_bt = ln(7/3);
 * contrastive at temperature 2 = ln(1 + sqrt(4/3)) + ln 2.
 */
const pkg = path.join(__dirname, '..');
const LN2 = Math.log(2);

function objective(losses: WeightedLoss[]): number {
  return tf.tidy(() => {
    const liked = tf.tensor2d([[0, LN2, Math.log(3)]]);
    const disliked = tf.tensor2d([[0, Math.log(3), Math.log(4)]]);
    const terms = losses.map(({ loss, weight }) => tf.mul(loss.compute({ liked, disliked }, { positive: 2, negative: 0 }), weight));
    return tf.addN(terms).dataSync()[0];
  });
}

describe('losses assembled from config', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });

  it('the paper objective (base + contrastive, unit weights) vs a Bradley-Terry objective: values differ, no code change', async () => {
    const paper: PluginsConfig = {
      losses: [
        { package: pkg, name: 'base' },
        { package: pkg, name: 'contrastive' },
      ],
    };
    const alternative: PluginsConfig = { losses: [{ package: pkg, name: 'bradley-terry', weight: 0.5 }] };
    const a = await assemble(paper, { logger: memoryLogger(), seed: 1 });
    const b = await assemble(alternative, { logger: memoryLogger(), seed: 1 });

    expect(a.losses.map((l) => [l.loss.name, l.weight])).toEqual([
      ['base', 1],
      ['contrastive', 1],
    ]);
    expect(a.options['loss:contrastive']).toEqual({ temperature: 1 });
    expect(b.losses.map((l) => [l.loss.name, l.weight])).toEqual([['bradley-terry', 0.5]]);

    const va = objective(a.losses);
    const vb = objective(b.losses);
    expect(va).toBeCloseTo(2 * LN2 + Math.log(14 / 3), 5);
    expect(vb).toBeCloseTo(0.5 * Math.log(7 / 3), 5);
    expect(Math.abs(va - vb)).toBeGreaterThan(1);
  });

  it('an option in config reaches the loss (contrastive temperature)', async () => {
    const c = await assemble({ losses: [{ package: pkg, name: 'contrastive', options: { temperature: 2 } }] }, { logger: memoryLogger(), seed: 1 });
    expect(objective(c.losses)).toBeCloseTo(Math.log(1 + Math.sqrt(4 / 3)) + LN2, 5);
  });

  it('rejects a bad option with the schema message', async () => {
    await expect(assemble({ losses: [{ package: pkg, name: 'contrastive', options: { temperature: 0 } }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /plugin '@userpref\/loss-preference' loss 'contrastive': option 'temperature' must be > 0/,
    );
    await expect(assemble({ losses: [{ package: pkg, name: 'base', options: { margin: 1 } }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /unknown option 'margin'/,
    );
    await expect(assemble({ losses: [{ package: pkg, name: 'focal' }] }, { logger: memoryLogger(), seed: 1 })).rejects.toThrow(
      /has no loss named 'focal' \(it offers: base, contrastive, bradley-terry\)/,
    );
  });
});
