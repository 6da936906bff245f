export { initRuntime, runtimeInfo, DeviceUnavailableError } from './runtime';
export type { Device, BackendName, RuntimeInfo, RuntimeOptions } from './runtime';
export { patchWasmBackend } from './wasm-kernels';
