/**
 * How much the wasm patch of @userpref/runtime speeds up matMul gradients: tfjs' own BatchMatMul
 * gradient issues matMuls with transpose flags, which the stock wasm kernel runs 13-22x slower
 * than a plain matMul. We time the gradient of sum(A @ B) on wasm with the stock kernel and
 * with the patched one, in separate child processes (kernels are process-global).
 */
import { spawnSync } from 'child_process';
import * as path from 'path';

export interface MatMulBench {
  size: number;
  stockMs: number;
  patchedMs: number;
  speedup: number;
  plainForwardMs: number;
}

const CHILD = `
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const patch = process.argv[1] === 'patched';
(async () => {
  if (patch) require(${JSON.stringify(path.join(__dirname, '..', 'packages', 'runtime', 'src', 'wasm-kernels.ts'))}).patchWasmBackend();
  await tf.setBackend('wasm'); await tf.ready();
  const n = Number(process.argv[2]);
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1), b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  const g = tf.grads((x, y) => tf.sum(tf.matMul(x, y)));
  const time = (f, reps) => { f(); const t0 = process.hrtime.bigint(); for (let i = 0; i < reps; i++) f(); return Number(process.hrtime.bigint() - t0) / 1e6 / reps; };
  const reps = Number(process.argv[3]);
  const grad = time(() => tf.tidy(() => g([a, b]).forEach((t) => t.dataSync())), reps);
  // dataSync outside tidy: tidy walks a returned typed array element by element.
  const fwd = time(() => { const c = tf.matMul(a, b); c.dataSync(); c.dispose(); }, reps);
  process.stdout.write(JSON.stringify({ grad, fwd }));
})();
`;

export function benchWasmMatMul(size = 512, reps = 5): MatMulBench {
  const run = (mode: string) => {
    const r = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', CHILD, mode, String(size), String(reps)], {
      encoding: 'utf8',
      cwd: path.join(__dirname, '..'),
      env: { ...process.env, TS_NODE_PROJECT: path.join(__dirname, '..', 'tsconfig.base.json') },
    });
    if (r.status !== 0) throw new Error(`matmul bench child failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { grad: number; fwd: number };
  };
  const stock = run('stock');
  const patched = run('patched');
  return { size, stockMs: stock.grad, patchedMs: patched.grad, speedup: stock.grad / patched.grad, plainForwardMs: patched.fwd };
}
