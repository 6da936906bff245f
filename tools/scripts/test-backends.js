#!/usr/bin/env node
// `npm run test:backends`: the numerical goldens (jest.backends.config.js) once per backend.
// By default both native (tensorflow) and wasm, each required: run where `npm ci` installed
// tfjs-node (CI). `-- wasm` (or USERPREF_BACKENDS=wasm) picks backends; USERPREF_BACKENDS=auto
// runs tensorflow only where @tensorflow/tfjs-node loads and says so otherwise.
const { spawnSync } = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..', '..');
let backends = process.argv.slice(2).filter((a) => !a.startsWith('-'));
if (!backends.length) backends = (process.env.USERPREF_BACKENDS || 'tensorflow,wasm').split(',').map((s) => s.trim()).filter(Boolean);
if (backends.includes('auto')) {
  const probe = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { cwd: root, stdio: 'ignore' });
  backends = probe.status === 0 ? ['tensorflow', 'wasm'] : ['wasm'];
  if (probe.status !== 0) console.log('[test-backends] @tensorflow/tfjs-node does not load here: goldens on wasm only');
}
const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js');
let failed = false;
for (const backend of backends) {
  console.log(`\n[test-backends] numerical goldens on backend ${backend} (USERPREF_BACKEND=${backend})`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [jest, '-c', path.join(root, 'jest.backends.config.js'), '--maxWorkers=2', ...process.argv.slice(2).filter((a) => a.startsWith('-'))], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, USERPREF_BACKEND: backend },
  });
  console.log(`[test-backends] backend ${backend}: ${r.status === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
