/**
 * What a stage trains (SPEC §3-§4): stage 1 the backbone's adapter; stage 2 the preference tokens,
 * and the adapter too with trainAdapter. One place decides what is trained, what a checkpoint
 * saves and what a resume restores, so the three cannot disagree.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { Backbone, PreferenceTokens } from '@userpref/core';
import type { AdamW, AdamWState } from './adamw';
import type { CheckpointWriters } from './checkpoint';

export class TrainedParts {
  /** Whether the adapter is trained (and so saved and restored). */
  readonly adapter: boolean;
  /** Whether the preference tokens are trained (and so saved and restored). */
  readonly tokens: boolean;

  constructor(
    private readonly c: { backbone: Backbone; tokens?: PreferenceTokens },
    o: { stage: 1 | 2; trainAdapter?: boolean },
  ) {
    this.adapter = o.stage === 1 || !!o.trainAdapter;
    this.tokens = o.stage === 2;
  }

  /** The trainable variables: the tokens' first, then the adapter's. */
  variables(): tf.Variable[] {
    return [...(this.tokens ? this.c.tokens!.variables() : []), ...(this.adapter ? this.c.backbone.adapterVariables() : [])];
  }

  /** Writes the trained parts into a checkpoint (`adapter/`, `tokens/`). */
  writers(): CheckpointWriters {
    return {
      saveAdapter: this.adapter ? (d: string) => this.c.backbone.saveAdapter(d) : undefined,
      saveTokens: this.tokens ? (d: string) => this.c.tokens!.save(d) : undefined,
    };
  }

  /** Restores the trained parts from a checkpoint directory. */
  async load(checkpoint: string): Promise<void> {
    if (this.adapter) await this.c.backbone.loadAdapter(path.join(checkpoint, 'adapter'));
    if (this.tokens) await this.c.tokens!.load(path.join(checkpoint, 'tokens'));
  }
}

/**
 * The trainable variables with their optimizer keys. Optimizer state is keyed by the variable's
 * position in the trainable list (tfjs names are process-global and differ between runs).
 */
export class KeyedTrainables {
  readonly keyed: ReadonlyArray<{ v: tf.Variable; key: string }>;
  private readonly keyOf: Map<string, string>;

  constructor(vars: readonly tf.Variable[], stage: 1 | 2) {
    if (!vars.length) throw new Error(`stage ${stage} has no trainable variables`);
    const names = new Set<string>();
    for (const v of vars) {
      if (names.has(v.name)) throw new Error(`two trainable variables share the name '${v.name}'`);
      names.add(v.name);
    }
    this.keyOf = new Map(vars.map((v, i) => [v.name, `param${String(i).padStart(4, '0')}`]));
    this.keyed = vars.map((v) => ({ v, key: this.keyOf.get(v.name)! }));
  }

  /** The optimizer key of a variable, by its tfjs name. */
  key(name: string): string {
    return this.keyOf.get(name)!;
  }

  /** How many numbers are trained. */
  get size(): number {
    return this.keyed.reduce((a, { v }) => a + v.size, 0);
  }

  /** Loads saved optimizer state after checking that its moments have the variables' shapes. */
  restoreOptimizer(optimizer: AdamW, saved: AdamWState): void {
    for (const { v, key } of this.keyed) {
      const m = saved.moments[key];
      if (m && !tf.util.arraysEqual(m.shape, v.shape)) throw new Error(`optimizer state ${key} has shape [${m.shape}] but trainable variable ${v.name} has [${v.shape}]`);
    }
    optimizer.loadState(saved);
  }
}
