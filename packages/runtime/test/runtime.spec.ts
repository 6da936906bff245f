import * as tf from '@tensorflow/tfjs-core';
import { initRuntime, runtimeInfo, DeviceUnavailableError } from '../src';

describe('initRuntime', () => {
  it('takes the best CPU backend available and logs the choice', async () => {
    const logs: string[] = [];
    const info = await initRuntime({ device: 'cpu', log: (m) => logs.push(m) });
    // tfjs-node cannot be installed on this machine kind, so wasm is the best CPU backend here.
    let nodeInstalled = true;
    try {
      require.resolve('@tensorflow/tfjs-node');
    } catch {
      nodeInstalled = false;
    }
    expect(info.backend).toBe(nodeInstalled ? 'tensorflow' : 'wasm');
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

  it('rejects an unknown device', async () => {
    await expect(initRuntime({ device: 'tpu' as never })).rejects.toThrow(/unknown device 'tpu'/);
  });
});
