/**
 * Fixes for @tensorflow/tfjs-backend-wasm that training needs:
 *
 * 1. `UnsortedSegmentSum` is not registered on wasm, and the gradient of `gather` (every
 *    embedding lookup) is expressed through it, so `tf.grad` of a gather throws. We register a
 *    JS implementation that reads and writes the wasm heap directly.
 * 2. `BatchMatMul` with transposeA/transposeB runs 13-22x slower than a plain matMul on wasm
 *    (XNNPACK's fast path is only taken for the untransposed layout), and the default gradient
 *    of matMul uses exactly those flags. We replace the wasm kernel with one that materialises
 *    the transposes (cheap: O(n^2) against O(n^3)) and calls the original plain kernel, and we
 *    register a BatchMatMul gradient that transposes explicitly instead of using flags.
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's CommonJS entry registers no gradients; the @tensorflow/tfjs bundle registers them
// all into the same (deduplicated) tfjs-core. Loaded before our BatchMatMul override below.
import '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object, force?: boolean): boolean;
}

let patched = false;

export function patchWasmBackend(): void {
  if (patched) return;
  patched = true;
  registerUnsortedSegmentSum();
  replaceBatchMatMul();
  registerMatMulGradient();
}

let gradientRegistered = false;

/**
 * The BatchMatMul gradient of every backend (gradients are global in tfjs). tfjs' own one does
 * not sum a broadcast batch dimension back to its input's shape ([2,3,5,6] for a [1,5,6]
 * operand); this one does. On wasm it transposes explicitly (see 2. above); elsewhere (tensorflow,
 * cpu) it passes transpose flags, which the native kernels take for free.
 */
export function registerMatMulGradient(): void {
  if (gradientRegistered) return;
  gradientRegistered = true;
  registerExplicitTransposeMatMulGradient();
}

function registerUnsortedSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  const kernelFunc = ({ inputs, backend, attrs }: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }) => {
    const b = backend as WasmBackendLike;
    const x = inputs.x as TensorInfo;
    const segmentIds = inputs.segmentIds as TensorInfo;
    const numSegments = (attrs as { numSegments: number }).numSegments;
    const rowLen = x.shape.slice(1).reduce((a, c) => a * c, 1);
    const out = b.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
    const outVals = b.typedArrayFromHeap(out);
    outVals.fill(0);
    const xVals = b.typedArrayFromHeap(x);
    const ids = b.typedArrayFromHeap(segmentIds);
    for (let r = 0; r < ids.length; r++) {
      const s = ids[r];
      if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
      const src = r * rowLen;
      const dst = s * rowLen;
      for (let j = 0; j < rowLen; j++) outVals[dst + j] += xVals[src + j];
    }
    return out;
  };
  tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: kernelFunc as unknown as KernelFunc });
}

function replaceBatchMatMul(): void {
  const original = tf.getKernel('BatchMatMul', 'wasm');
  const transposeKernel = tf.getKernel('Transpose', 'wasm');
  if (!original || !transposeKernel) return;
  const origFunc = original.kernelFunc;
  const transposeLast2 = (x: TensorInfo, backend: unknown): TensorInfo => {
    const rank = x.shape.length;
    const perm = [...Array(rank).keys()];
    perm[rank - 1] = rank - 2;
    perm[rank - 2] = rank - 1;
    return transposeKernel.kernelFunc({ inputs: { x }, backend: backend as never, attrs: { perm } }) as TensorInfo;
  };
  const kernelFunc = ({ inputs, backend, attrs }: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }) => {
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return origFunc({ inputs, backend: backend as never, attrs });
    const b = backend as WasmBackendLike;
    const temps: TensorInfo[] = [];
    let a = inputs.a as TensorInfo;
    let bb = inputs.b as TensorInfo;
    if (transposeA) temps.push((a = transposeLast2(a, backend)));
    if (transposeB) temps.push((bb = transposeLast2(bb, backend)));
    const out = origFunc({ inputs: { a, b: bb }, backend: backend as never, attrs: { ...attrs, transposeA: false, transposeB: false } });
    for (const t of temps) b.disposeData(t.dataId, true);
    return out;
  };
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ ...original, kernelFunc: kernelFunc as unknown as KernelFunc } as KernelConfig);
}

/**
 * Gradient of C = op(A) @ op(B) written with explicit transposes, so that every matMul it
 * issues is a plain one. Same math as tfjs' own BatchMatMul gradient.
 */
function registerExplicitTransposeMatMulGradient(): void {
  const tT = (x: tf.Tensor) => {
    const r = x.rank;
    const perm = [...Array(r).keys()];
    perm[r - 1] = r - 2;
    perm[r - 2] = r - 1;
    return tf.transpose(x, perm);
  };
  tf.registerGradient({
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => {
      const [a, b] = saved;
      const g = dy as tf.Tensor;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      const mm = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
      // Batch dimensions may broadcast: sum the gradient back to the input's shape.
      const to = (grad: tf.Tensor, like: tf.Tensor) => {
        if (tf.util.arraysEqual(grad.shape, like.shape)) return grad;
        const lead = grad.rank - like.rank;
        const axes: number[] = [];
        for (let i = 0; i < grad.rank - 2; i++) {
          if (i < lead || like.shape[i - lead] === 1) axes.push(i);
        }
        return tf.reshape(tf.sum(grad, axes, true), like.shape);
      };
      if (tf.getBackend() !== 'wasm') {
        // Same math with flags: no transpose is materialised.
        const mmT = (x: tf.Tensor, y: tf.Tensor, ta: boolean, tb: boolean) => tf.matMul(x, y, ta, tb);
        if (!transposeA && !transposeB) return { a: () => to(mmT(g, b, false, true), a), b: () => to(mmT(a, g, true, false), b) };
        if (!transposeA && transposeB) return { a: () => to(mmT(g, b, false, false), a), b: () => to(mmT(g, a, true, false), b) };
        if (transposeA && !transposeB) return { a: () => to(mmT(b, g, false, true), a), b: () => to(mmT(a, g, false, false), b) };
        return { a: () => to(mmT(b, g, true, true), a), b: () => to(mmT(g, a, true, true), b) };
      }
      if (!transposeA && !transposeB) return { a: () => to(mm(g, tT(b)), a), b: () => to(mm(tT(a), g), b) };
      if (!transposeA && transposeB) return { a: () => to(mm(g, b), a), b: () => to(mm(tT(g), a), b) };
      if (transposeA && !transposeB) return { a: () => to(mm(b, tT(g)), a), b: () => to(mm(a, g), b) };
      return { a: () => to(mm(tT(b), tT(g)), a), b: () => to(mm(tT(g), tT(a)), b) };
    },
  });
}
