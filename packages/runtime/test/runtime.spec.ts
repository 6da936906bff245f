import * as tf from '@tensorflow/tfjs-core';
import { initRuntime, runtimeInfo, pinnedBackend, DeviceUnavailableError } from '../src';

describe('initRuntime', () => {
  it('takes the best CPU backend available and logs the choice', async () => {
    const logs: string[] = [];
    const info = await initRuntime({ device: 'cpu', log: (m) => logs.push(m) });
    // tfjs-node is the best CPU backend where `npm ci` could install or build it, else wasm,
    // unless USERPREF_BACKEND pins one.
    let nodeInstalled = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      nodeInstalled = false;
    }
    expect(info.backend).toBe(pinnedBackend() ?? (nodeInstalled ? 'tensorflow' : 'wasm'));
    expect(tf.getBackend()).toBe(info.backend);
    expect(runtimeInfo()).toEqual(info);
    expect(logs[0]).toMatch(/^tensor backend: (wasm|tensorflow)/);
  });

  it('falls back to the plain cpu backend when asked to', async () => {
    const info = await initRuntime({ device: 'cpu', prefer: 'cpu' });
    expect(info.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('says what to install when gpu is asked for and tfjs-node-gpu is absent', async () => {
    let gpuInstalled = true;
    try {
      require.resolve('@tensorflow/tfjs-node-gpu');
    } catch {
      gpuInstalled = false;
    }
    if (gpuInstalled) return; // on a GPU machine this path cannot be exercised
    await expect(initRuntime({ device: 'gpu' })).rejects.toThrow(DeviceUnavailableError);
    await expect(initRuntime({ device: 'gpu' })).rejects.toThrow(/npm install @tensorflow\/tfjs-node-gpu/);
  });

  describe('USERPREF_BACKEND', () => {
    const saved = process.env.USERPREF_BACKEND;
    afterEach(() => {
      if (saved === undefined) delete process.env.USERPREF_BACKEND;
      else process.env.USERPREF_BACKEND = saved;
    });

    it('pins the backend for the whole process', async () => {
      process.env.USERPREF_BACKEND = 'cpu';
      expect(pinnedBackend()).toBe('cpu');
      const info = await initRuntime({ device: 'cpu' });
      expect(info.backend).toBe('cpu');
      expect(tf.getBackend()).toBe('cpu');
    });

    it('rejects a value that names no backend', async () => {
      process.env.USERPREF_BACKEND = 'webgl';
      await expect(initRuntime({ device: 'cpu' })).rejects.toThrow(/USERPREF_BACKEND='webgl': expected one of tensorflow, wasm, cpu/);
    });

    it('is an error, not a fallback, when the pinned backend is unavailable', async () => {
      process.env.USERPREF_BACKEND = 'wasm';
      // gpu has no wasm candidate: the pin leaves nothing to try.
      await expect(initRuntime({ device: 'gpu' })).rejects.toThrow(DeviceUnavailableError);
      expect(pinnedBackend({ USERPREF_BACKEND: ' tensorflow ' })).toBe('tensorflow');
      expect(pinnedBackend({})).toBeUndefined();
    });
  });

  it('auto skips a GPU package that is installed but cannot load, and says so', async () => {
    let gpuLoads = true;
    try {
      require('@tensorflow/tfjs-node-gpu');
    } catch {
      gpuLoads = false;
    }
    const logs: string[] = [];
    const info = await initRuntime({ device: 'auto', log: (m) => logs.push(m) });
    if (gpuLoads) {
      expect(info.gpu).toBe(true);
      return;
    }
    expect(info.gpu).toBe(false);
    expect(logs[logs.length - 1]).toMatch(/^tensor backend: /);
  });

  it('rejects an unknown device', async () => {
    await expect(initRuntime({ device: 'tpu' as never })).rejects.toThrow(/unknown device 'tpu'/);
  });
});
