/**
 * The one place that decides which tfjs backend runs userpref's tensors.
 *
 *   gpu  -> @tensorflow/tfjs-node-gpu (optional dependency: its install downloads libtensorflow)
 *   cpu  -> @tensorflow/tfjs-node if installed, else @tensorflow/tfjs-backend-wasm (patched, see
 *           wasm-kernels.ts), else the plain JS cpu backend
 *   auto -> gpu if installed, else cpu as above
 *
 * `npm ci` builds @tensorflow/tfjs-node from the TensorFlow wheel where its own install cannot
 * download libtensorflow (tools/scripts/native-backend.js), so `cpu` is native wherever a
 * compiler and pip were available. USERPREF_BACKEND=tensorflow|wasm|cpu pins one backend for a
 * whole process (CI runs the numerical goldens once per backend this way); a pinned backend that
 * cannot be initialised is an error, never a silent fallback.
 */
import * as tf from '@tensorflow/tfjs-core';
import { patchWasmBackend, registerMatMulGradient } from './wasm-kernels';

export type Device = 'auto' | 'gpu' | 'cpu';
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface RuntimeInfo {
  device: Device;
  backend: BackendName;
  /** Which package provides the backend, for logs and benchmark reports. */
  provider: string;
  gpu: boolean;
}

export interface RuntimeOptions {
  device?: Device;
  /** Called once with the choice, e.g. to log it. */
  log?: (message: string, fields: Record<string, unknown>) => void;
  /** Restrict the candidates, e.g. to force the plain cpu backend in tests. Default: env USERPREF_BACKEND. */
  prefer?: BackendName;
}

const BACKENDS: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** The backend pinned by the environment (USERPREF_BACKEND), if any. */
export function pinnedBackend(env: NodeJS.ProcessEnv = process.env): BackendName | undefined {
  const v = env.USERPREF_BACKEND?.trim();
  if (!v) return undefined;
  if (!BACKENDS.includes(v as BackendName)) {
    throw new Error(`USERPREF_BACKEND='${v}': expected one of ${BACKENDS.join(', ')}`);
  }
  return v as BackendName;
}

type Loader = () => boolean;

function tryRequire(name: string): boolean {
  // libtensorflow's start-up notes (oneDNN, CPU features) on stderr at every load; warnings stay.
  if (name.startsWith('@tensorflow/tfjs-node')) process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(name);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND' || /Cannot find module/.test(String(err))) return false;
    // Installed but broken (e.g. libtensorflow missing): say so rather than silently fall back.
    throw new Error(`${name} is installed but failed to load: ${(err as Error).message}`);
  }
}

export class DeviceUnavailableError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in @userpref/core). */
  readonly expected = true;
  constructor(message: string) {
    super(message);
    this.name = 'DeviceUnavailableError';
  }
}

let current: RuntimeInfo | undefined;

export async function initRuntime(options: RuntimeOptions = {}): Promise<RuntimeInfo> {
  const device = options.device ?? 'auto';
  if (!['auto', 'gpu', 'cpu'].includes(device)) {
    throw new Error(`unknown device '${device}': expected one of auto, gpu, cpu`);
  }
  const candidates: Array<{ backend: BackendName; provider: string; gpu: boolean; load: Loader }> = [];
  const gpu = { backend: 'tensorflow' as const, provider: '@tensorflow/tfjs-node-gpu', gpu: true, load: () => tryRequire('@tensorflow/tfjs-node-gpu') };
  const node = { backend: 'tensorflow' as const, provider: '@tensorflow/tfjs-node', gpu: false, load: () => tryRequire('@tensorflow/tfjs-node') };
  const wasm = { backend: 'wasm' as const, provider: '@tensorflow/tfjs-backend-wasm', gpu: false, load: () => tryRequire('@tensorflow/tfjs-backend-wasm') };
  const cpu = { backend: 'cpu' as const, provider: '@tensorflow/tfjs-backend-cpu', gpu: false, load: () => tryRequire('@tensorflow/tfjs-backend-cpu') };
  if (device === 'gpu') candidates.push(gpu);
  if (device === 'auto') {
    // auto only prefers the GPU: a tfjs-node-gpu that npm left without its binding (its install
    // script did not run or could not download) is reported and skipped, not fatal.
    candidates.push({
      ...gpu,
      load: () => {
        try {
          return gpu.load();
        } catch (err) {
          options.log?.(`--device auto: ${(err as Error).message.split('\n')[0]}; trying the CPU backends`, { provider: gpu.provider });
          return false;
        }
      },
    });
  }
  if (device !== 'gpu') candidates.push(node, wasm, cpu);
  const prefer = options.prefer ?? pinnedBackend();
  const filtered = prefer ? candidates.filter((c) => c.backend === prefer) : candidates;

  registerMatMulGradient(); // every backend: tfjs' own one mishandles broadcast batch dimensions
  for (const c of filtered) {
    if (!c.load()) continue;
    if (c.backend === 'wasm') patchWasmBackend();
    const ok = await tf.setBackend(c.backend);
    if (!ok) continue;
    await tf.ready();
    current = { device, backend: c.backend, provider: c.provider, gpu: c.gpu };
    options.log?.(`tensor backend: ${c.backend} (${c.provider})`, { ...current });
    return current;
  }
  if (device === 'gpu') {
    throw new DeviceUnavailableError(
      "--device gpu needs @tensorflow/tfjs-node-gpu, which is not installed here. Install it with " +
        "'npm install @tensorflow/tfjs-node-gpu' on a machine with CUDA and network access to download " +
        'libtensorflow, or run with --device cpu.',
    );
  }
  const pinned = !options.prefer && prefer ? ` (USERPREF_BACKEND=${prefer})` : '';
  throw new DeviceUnavailableError(`no tfjs backend could be initialised${pinned} (tried ${filtered.map((c) => c.provider).join(', ') || 'none'})`);
}

/** The backend chosen by the last initRuntime call. */
export function runtimeInfo(): RuntimeInfo | undefined {
  return current;
}
