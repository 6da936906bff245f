// onnxruntime-node creates its output tensors from typed arrays of Node's own realm, and
// onnxruntime-common (loaded inside jest's sandbox) checks them with `instanceof` against the
// sandbox's constructors, which fails ("A float32 tensor's data must be type of function
// Float32Array()"). Sharing the typed-array constructors of the outer realm fixes that; plain Node
// (the runners) has one realm and needs nothing.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = ['ArrayBuffer', 'Float32Array', 'Float64Array', 'Int8Array', 'Int16Array', 'Int32Array', 'BigInt64Array', 'Uint8Array', 'Uint8ClampedArray', 'Uint16Array', 'Uint32Array', 'BigUint64Array'];

class OnnxRuntimeEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OnnxRuntimeEnvironment;
