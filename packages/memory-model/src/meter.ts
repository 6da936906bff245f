/**
 * Live and peak tensor bytes, sampled at every tensor allocation and release through the engine's
 * registry of data buffers (the registry tf.memory() reads).
 *
 * Two measures: buffer bytes, the bytes of distinct live data buffers (what a device holds: a
 * clone, a reshape and a tensor the gradient tape saves share their buffer), and tensor bytes,
 * tf.memory().numBytes (every live tensor object counted with its size, so one buffer held by three
 * tensors counts three times). The memory model predicts buffer bytes.
 *
 * The engine keeps its registry in a WeakMap (not enumerable), so the meter counts the buffers
 * created after `BufferMeter.install()`: install it before anything allocates tensors (before the
 * model loads) to count everything.
 */
import * as tf from '@tensorflow/tfjs-core';

interface EngineInternals {
  state: { tensorInfo: WeakMap<object, { bytes: number; backend: unknown }>; numBytes: number };
  trackTensor(a: tf.Tensor, backend: unknown): void;
  removeDataId(dataId: unknown, backend: unknown): void;
}

export class BufferMeter {
  private static instance: BufferMeter | null = null;
  private cur = 0;
  private peakBytes = 0;
  private peakTensor = 0;
  private readonly counted = new WeakMap<object, number>();

  private constructor() {
    const e = tf.engine() as unknown as EngineInternals;
    const track = e.trackTensor;
    const remove = e.removeDataId;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    e.trackTensor = function (a: tf.Tensor, backend: unknown) {
      const id = a.dataId as object;
      const had = e.state.tensorInfo.has(id);
      track.call(e, a, backend);
      if (!had && !self.counted.has(id)) {
        const info = e.state.tensorInfo.get(id);
        if (info) {
          self.counted.set(id, info.bytes);
          self.cur += info.bytes;
          if (self.cur > self.peakBytes) self.peakBytes = self.cur;
        }
      }
      if (e.state.numBytes > self.peakTensor) self.peakTensor = e.state.numBytes;
    };
    e.removeDataId = function (dataId: unknown, backend: unknown) {
      remove.call(e, dataId, backend);
      const id = dataId as object;
      const bytes = self.counted.get(id);
      if (bytes !== undefined && !e.state.tensorInfo.has(id)) {
        self.counted.delete(id);
        self.cur -= bytes;
      }
    };
  }

  /** The process-wide meter (patches the engine once; counts buffers created from now on). */
  static install(): BufferMeter {
    return (BufferMeter.instance ??= new BufferMeter());
  }

  /** Bytes of the live buffers created since install. */
  get live(): number {
    return this.cur;
  }

  /** Highest `live` since the last resetPeak(). */
  get peak(): number {
    return this.peakBytes;
  }

  /** Highest tf.memory().numBytes since the last resetPeak(). */
  get peakTensorBytes(): number {
    return this.peakTensor;
  }

  resetPeak(): void {
    this.peakBytes = this.cur;
    this.peakTensor = tf.memory().numBytes;
  }
}
