#!/usr/bin/env node
/**
 * Native TensorFlow backend for userpref, run by `npm ci` (root postinstall) and by hand:
 *
 *   node tools/scripts/native-backend.js              # cpu: @tensorflow/tfjs-node
 *   node tools/scripts/native-backend.js --device gpu # @tensorflow/tfjs-node-gpu (CUDA machine; also
 *                                                     # by default where nvidia-smi lists a GPU)
 *   node tools/scripts/native-backend.js --force      # rebuild even if the cache has a build
 *
 * 1. If the package already loads (its own install downloaded libtensorflow), nothing happens.
 * 2. Else, if ~/.cache/userpref/native/<key>/ holds a build for these versions, it is installed.
 * 3. Else the package is built: `npm pack` fetches it from the registry, pip fetches the pinned
 *    TensorFlow wheel (version and sha256 below), the wheel's libtensorflow and C headers go into
 *    the package's deps/, node-gyp builds the binding against the local Node headers, and its npm
 *    dependencies are installed next to it. The build is cached, then installed.
 * 4. If any of that is impossible (no pip, no compiler, no wheel), it prints one line saying why
 *    and that the wasm backend will be used, and exits 0: `npm ci` never fails because of it.
 *
 * Python (pip) is used only here, to fetch and unpack the wheel; nothing uses it at run time.
 * USERPREF_NATIVE=0 skips everything (then the wasm backend is used).
 */
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
/** Bump when the recipe below changes the build, so that old cache entries are not reused. */
const RECIPE = 2;
const TFJS_VERSION = '4.22.0';
/** N-API version the binding is built for (tfjs-node 4.22 ships napi 3..8; node-pre-gyp picks the highest <= Node's). */
const NAPI = Math.min(8, Number(process.versions.napi));
/**
 * What tfjs-node's dist/ requires at run time besides @tensorflow/tfjs (which must stay the
 * workspace's single copy, so it is not installed here). Versions as package-lock.json locks them.
 */
const RUNTIME_DEPS = { '@mapbox/node-pre-gyp': '1.0.9', 'google-protobuf': '3.21.4', progress: '2.0.3' };
const FLAVORS = {
  cpu: {
    pkg: '@tensorflow/tfjs-node',
    wheel: 'tensorflow-cpu',
    tfVersion: '2.21.0',
    file: 'tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl',
    sha256: '2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c',
    cuda: false,
  },
  gpu: {
    pkg: '@tensorflow/tfjs-node-gpu',
    wheel: 'tensorflow',
    tfVersion: '2.21.0',
    file: 'tensorflow-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl',
    // Not pinned: this machine's package index has no GPU wheel, so its hash could not be read.
    // Set USERPREF_TF_GPU_SHA256 to pin it; the script prints the hash it downloaded.
    sha256: process.env.USERPREF_TF_GPU_SHA256 || '',
    cuda: true,
  },
};

class Skip extends Error {}

function log(msg) {
  console.log(`[native-backend] ${msg}`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 20 * 60 * 1000, ...opts });
  if (r.error) throw new Skip(`${path.basename(cmd)} could not run (${r.error.code || r.error.message})`);
  if (r.status !== 0) {
    const lines = `${r.stderr || ''}\n${r.stdout || ''}`.trim().split('\n').filter(Boolean);
    // node-gyp ends with version lines: its first error line says more.
    const first = lines.find((l) => /ERR!.*(Error|error)|error:|ERROR/.test(l) && !/ERR! (System|command|cwd|node -v|node-gyp -v|not ok)/.test(l));
    const tail = [...new Set([first, ...lines.slice(-2)].filter(Boolean))].join(" | ");
    throw new Skip(`${path.basename(cmd)} ${args.slice(0, 2).join(' ')} failed (exit ${r.status}): ${tail}`);
  }
  return r.stdout;
}

function cacheRoot() {
  if (process.env.USERPREF_CACHE_DIR) return process.env.USERPREF_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'userpref');
}

/** Does `pkg` load from `dir` and run a matMul on the tensorflow backend? (In a child process: a broken binding may abort.) */
function loads(pkg, dir) {
  const probe =
    `const tf = require(${JSON.stringify(pkg)});` +
    `const y = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()[0];` +
    `if (tf.getBackend() !== 'tensorflow' || y !== 11) throw new Error('backend ' + tf.getBackend() + ', 1*3+2*4=' + y);`;
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: dir, encoding: 'utf8', timeout: 120000, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  if (r.status === 0) return { ok: true };
  const lines = `${r.stderr || ''}`.split('\n').map((l) => l.trim()).filter((l) => /Error|error:/.test(l));
  return { ok: false, why: lines[0] || `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}` };
}

function sha256File(file) {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Copy a tree, hard-linking files where the file system allows (the 850 MB library costs nothing then). */
function copyTree(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else if (e.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
    else {
      try {
        fs.linkSync(s, d);
      } catch {
        fs.copyFileSync(s, d);
      }
    }
  }
}

function python() {
  const candidates = [process.env.USERPREF_PIP_PYTHON, 'python3', 'python'].filter(Boolean);
  for (const py of candidates) {
    const r = spawnSync(py, ['-m', 'pip', '--version'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  throw new Skip('no Python with pip to fetch the TensorFlow wheel');
}

function pipIndexArgs() {
  // This kind of machine reaches no PyPI, only a local package index; elsewhere pip's own config applies.
  if (process.env.PIP_INDEX_URL || !fs.existsSync('/opt/pypi/simple')) return [];
  const args = ['--index-url', 'file:///opt/pypi/simple'];
  if (fs.existsSync('/opt/pypi-more/simple')) args.push('--extra-index-url', 'file:///opt/pypi-more/simple');
  return args;
}

/** The pinned wheel, from the cache or through pip; its sha256 checked. */
function fetchWheel(flavor, dir) {
  const wheel = path.join(dir, flavor.file);
  if (fs.existsSync(wheel) && flavor.sha256 && sha256File(wheel) === flavor.sha256) return wheel;
  const py = python();
  fs.mkdirSync(dir, { recursive: true });
  const spec = `${flavor.wheel}==${flavor.tfVersion}`;
  log(`fetching ${flavor.file} with pip (${flavor.sha256 ? 'sha256 pinned' : 'sha256 NOT pinned'})`);
  const args = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-q', '-d', dir,
    // The same wheel whatever Python runs pip: the library inside does not depend on Python.
    '--python-version', '3.11', '--implementation', 'cp', '--abi', 'cp311', '--platform', 'manylinux_2_27_x86_64',
    ...pipIndexArgs()];
  if (flavor.sha256) {
    const req = path.join(dir, 'requirements.txt');
    fs.writeFileSync(req, `${spec} --hash=sha256:${flavor.sha256}\n`);
    run(py, [...args, '--require-hashes', '-r', req]);
  } else {
    run(py, [...args, spec]);
  }
  if (!fs.existsSync(wheel)) throw new Skip(`pip did not produce ${flavor.file}`);
  const got = sha256File(wheel);
  if (flavor.sha256 && got !== flavor.sha256) throw new Skip(`${flavor.file} has sha256 ${got}, expected ${flavor.sha256}`);
  if (!flavor.sha256) log(`${flavor.file} sha256 ${got} (set USERPREF_TF_GPU_SHA256 to pin it)`);
  return wheel;
}

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(ROOT, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  for (const c of candidates) if (fs.existsSync(c)) return c;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js', { paths: [path.join(path.dirname(require.resolve('npm/package.json', { paths: ['/usr/lib/node_modules'] })), 'node_modules')] });
  } catch {
    throw new Skip('node-gyp not found (it ships with npm)');
  }
}

/** node-gyp must use the Node headers on this machine: it would download them otherwise. */
function nodeDirArgs() {
  if (process.env.npm_config_nodedir) return [`--nodedir=${process.env.npm_config_nodedir}`];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) return [`--nodedir=${prefix}`];
  return []; // node-gyp's own cache (~/.cache/node-gyp), or its download
}

function build(flavor, key, entry) {
  const t0 = Date.now();
  let tStep = t0;
  const step = (msg) => {
    const now = Date.now();
    log(`${key}: ${msg}${now - tStep > 1000 ? ` (previous step ${((now - tStep) / 1000).toFixed(0)} s)` : ''}`);
    tStep = now;
  };
  const work = `${entry}.tmp-${process.pid}`;
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  try {
    for (const tool of ['make', 'g++']) {
      if (spawnSync(tool, ['--version']).status !== 0) throw new Skip(`no ${tool} to build the binding`);
    }
    step(`fetching ${flavor.pkg}@${TFJS_VERSION} (npm pack)`);
    const tgz = run('npm', ['pack', `${flavor.pkg}@${TFJS_VERSION}`, '--silent', '--pack-destination', work], { cwd: work }).trim().split('\n').pop();
    run('tar', ['xzf', path.join(work, tgz), '-C', work]);
    const pkgDir = path.join(work, 'package');

    const wheel = fetchWheel(flavor, path.join(cacheRoot(), 'wheels'));
    const py = python();
    const helper = path.join(__dirname, 'native-backend-wheel.py');
    step('unpacking libtensorflow and its C headers from the wheel');
    run(py, [helper, 'extract', wheel, pkgDir]);
    if (flavor.cuda) {
      const reqs = run(py, [helper, 'cuda-requirements', wheel]).trim().split('\n').filter(Boolean);
      const cudaDir = path.join(cacheRoot(), 'wheels', `cuda-${flavor.tfVersion}`);
      step(`fetching ${reqs.length} CUDA wheels with pip`);
      run(py, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check', '-q', '-d', cudaDir, ...pipIndexArgs(), ...reqs]);
      const cudaWheels = fs.readdirSync(cudaDir).filter((f) => f.endsWith('.whl')).map((f) => path.join(cudaDir, f));
      run(py, [helper, 'extract-cuda', pkgDir, ...cudaWheels]);
    }
    // The binding links -ltensorflow -ltensorflow_framework; the library's soname is libtensorflow_cc.so.2.
    const lib = path.join(pkgDir, 'deps', 'lib');
    fs.symlinkSync('libtensorflow_cc.so.2', path.join(lib, 'libtensorflow.so.2'));
    fs.symlinkSync('libtensorflow.so.2', path.join(lib, 'libtensorflow.so'));
    fs.symlinkSync('libtensorflow_framework.so.2', path.join(lib, 'libtensorflow_framework.so'));

    step('building the binding with node-gyp against the local Node headers');
    const binding = require(path.join(pkgDir, 'package.json')).binary;
    const modulePath = path.join(pkgDir, binding.module_path.replace('{napi_build_version}', String(NAPI)));
    run(process.execPath, [nodeGyp(), 'rebuild', `--jobs=${Math.max(1, os.cpus().length)}`, ...nodeDirArgs(),
      `--module_name=${binding.module_name}`, `--module_path=${modulePath}`, `--napi_build_version=${NAPI}`], { cwd: pkgDir });
    fs.rmSync(path.join(pkgDir, 'build'), { recursive: true, force: true });

    step(`installing its run-time npm dependencies (${Object.entries(RUNTIME_DEPS).map(([n, v]) => `${n}@${v}`).join(', ')})`);
    const depsDir = path.join(work, 'deps-install');
    fs.mkdirSync(depsDir);
    fs.writeFileSync(path.join(depsDir, 'package.json'), JSON.stringify({ name: 'tfjs-node-deps', private: true, dependencies: RUNTIME_DEPS }));
    run('npm', ['install', '--omit=dev', '--ignore-scripts', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: depsDir });
    fs.renameSync(path.join(depsDir, 'node_modules'), path.join(pkgDir, 'node_modules'));
    fs.writeFileSync(path.join(pkgDir, 'USERPREF-BUILD.json'), JSON.stringify({
      built: new Date().toISOString(), recipe: RECIPE, package: `${flavor.pkg}@${TFJS_VERSION}`, napi: NAPI,
      wheel: flavor.file, sha256: flavor.sha256 || sha256File(wheel), node: process.version,
    }, null, 2));

    fs.rmSync(entry, { recursive: true, force: true });
    fs.renameSync(pkgDir, entry);
    // Builds of other versions or recipes of this package are not used any more (~850 MB each).
    const prefix = `${flavor.pkg.split('/')[1]}-`;
    for (const old of fs.readdirSync(path.dirname(entry))) {
      if (old.startsWith(prefix) && old !== key && !old.includes('.tmp-') && !old.endsWith('.lock')) fs.rmSync(path.join(path.dirname(entry), old), { recursive: true, force: true });
    }
    log(`${key}: built in ${((Date.now() - t0) / 1000).toFixed(0)} s, cached in ${entry}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** One builder at a time per cache entry (two `npm ci` in parallel would otherwise race). */
function withLock(lockDir, fn) {
  const deadline = Date.now() + 15 * 60 * 1000;
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      const age = Date.now() - fs.statSync(lockDir).mtimeMs;
      if (age > 15 * 60 * 1000) {
        fs.rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Skip(`another build holds ${lockDir}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

function ensure(device, force) {
  const flavor = FLAVORS[device];
  const target = path.join(ROOT, 'node_modules', ...flavor.pkg.split('/'));
  if (!force && fs.existsSync(target)) {
    const own = loads(flavor.pkg, ROOT);
    if (own.ok) {
      log(`${flavor.pkg} loads (backend tensorflow); nothing to build`);
      return true;
    }
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Skip(`no TensorFlow wheel recipe for ${process.platform}-${process.arch}`);
  const key = `${flavor.pkg.split('/')[1]}-${TFJS_VERSION}_${flavor.wheel}-${flavor.tfVersion}_napi${NAPI}_${process.platform}-${process.arch}_r${RECIPE}`;
  const entry = path.join(cacheRoot(), 'native', key);
  fs.mkdirSync(path.dirname(entry), { recursive: true });
  withLock(`${entry}.lock`, () => {
    if (force || !fs.existsSync(path.join(entry, 'USERPREF-BUILD.json'))) build(flavor, key, entry);
    else log(`${key}: reusing the cached build in ${entry}`);
  });
  fs.rmSync(target, { recursive: true, force: true });
  copyTree(entry, target);
  const check = loads(flavor.pkg, ROOT);
  if (!check.ok) {
    fs.rmSync(target, { recursive: true, force: true });
    fs.rmSync(entry, { recursive: true, force: true }); // never reuse a build that does not load
    throw new Skip(`the built ${flavor.pkg} does not load (${check.why})`);
  }
  log(`${flavor.pkg} installed from the TensorFlow ${flavor.tfVersion} wheel; backend tensorflow works`);
  return true;
}

function main() {
  const argv = process.argv.slice(2);
  const force = argv.includes('--force');
  const di = argv.indexOf('--device');
  let devices = di >= 0 ? [argv[di + 1]] : ['cpu'];
  // A CUDA machine (nvidia-smi lists a GPU) or USERPREF_DEVICE=gpu also gets tfjs-node-gpu.
  const cudaMachine = () => spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).status === 0;
  if (di < 0 && (process.env.USERPREF_DEVICE === 'gpu' || cudaMachine())) devices = ['cpu', 'gpu'];
  if (devices.some((d) => !FLAVORS[d])) {
    console.error(`usage: native-backend.js [--device cpu|gpu] [--force]`);
    process.exit(2);
  }
  if (process.env.USERPREF_NATIVE === '0') {
    log('USERPREF_NATIVE=0: not installing a native backend; tensors will run on wasm');
    return;
  }
  for (const device of devices) {
    const flavor = FLAVORS[device];
    try {
      ensure(device, force);
    } catch (e) {
      const why = e instanceof Skip ? e.message : `unexpected error: ${e && e.stack ? e.stack.split('\n')[0] : e}`;
      const fallback = device === 'gpu' ? '--device gpu is unavailable' : 'tensors will run on wasm';
      log(`${flavor.pkg} not available: ${why}; ${fallback}`);
    }
  }
}

main();
