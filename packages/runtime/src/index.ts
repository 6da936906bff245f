export { initRuntime, runtimeInfo, pinnedBackend, DeviceUnavailableError } from './runtime';
export type { Device, BackendName, RuntimeInfo, RuntimeOptions } from './runtime';
export { patchWasmBackend, registerMatMulGradient } from './wasm-kernels';
