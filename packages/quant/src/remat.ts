/**
 * Activation checkpointing (rematerialization) for tfjs: `checkpointed(fn, x, params)` computes
 * fn(x) without recording its inside on the gradient tape; the tape keeps only x. In the backward
 * pass fn is run again from x with the tape on, and its gradient with respect to x and `params`
 * (the trainable tensors fn reads, e.g. LoRA variables) is taken and returned. So a decoder layer
 * costs its input in saved memory instead of every intermediate, plus one layer's recomputation
 * at a time during the backward.
 *
 * fn must be deterministic (dropout masks from a seed, not Math.random) and read trainable tensors
 * only through `params`' tensors (a variable fn uses but `params` omits gets no gradient). Frozen
 * weights need not be listed: they get no gradient either way. Anything fn unpacks (a packed
 * weight materialised inside fn) is freed when fn returns and re-made in the recomputation.
 *
 * tfjs' engine keeps one active tape: a gradient taken inside a gradient function replaces it, so
 * the outer tape reference is put back afterwards (otherwise the outer pass fails when it frees
 * its saved tensors).
 */
import * as tf from '@tensorflow/tfjs-core';

interface EngineState {
  state: { activeTape: unknown; gradientDepth: number; kernelDepth: number };
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: tf.Tensor[] };
}

/** True while tf.grad / tf.variableGrads is recording (the forward pass of a training step). */
export function recordingGradients(): boolean {
  const e = tf.engine() as unknown as EngineState;
  return e.state.gradientDepth > 0 && e.state.kernelDepth === 0;
}

/**
 * fn(x) with activation checkpointing when a gradient is being recorded; a plain call otherwise
 * (evaluation needs no tape). `params`: trainable tensors fn reads (their gradients are returned
 * through the checkpoint).
 */
export function checkpointed<T extends tf.Tensor>(fn: (x: T) => T, x: T, params: readonly tf.Tensor[]): T {
  return checkpointedMulti((xs) => fn(xs[0] as T), [x], params);
}

/** checkpointed() for a block with several inputs (all kept, all given gradients). */
export function checkpointedMulti<T extends tf.Tensor>(fn: (xs: tf.Tensor[]) => T, inputs: readonly tf.Tensor[], params: readonly tf.Tensor[]): T {
  if (!recordingGradients()) return fn([...inputs]);
  const e = tf.engine() as unknown as EngineState;
  const n = inputs.length;
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, n) as tf.Tensor[];
    save(xs);
    return {
      value: fn(xs),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const outer = e.state.activeTape;
        const wrt: tf.Tensor[] = [...saved, ...params];
        try {
          const { value, grads } = e.gradients(() => fn(saved), wrt, dy as tf.Tensor, true);
          value.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(wrt[i]));
        } finally {
          e.state.activeTape = outer;
        }
      },
    };
  });
  return op(...inputs, ...params) as T;
}
