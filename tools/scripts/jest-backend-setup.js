// setupFilesAfterEnv of jest.backends.config.js: every golden file starts on the backend that
// USERPREF_BACKEND pins (an unavailable one fails the file), and ends on it: a file that switched
// to another backend would not be testing the pinned one.
const tf = require('@tensorflow/tfjs-core');
const { initRuntime, pinnedBackend } = require('@userpref/runtime');

const pinned = pinnedBackend();
if (!pinned) throw new Error('jest.backends.config.js needs USERPREF_BACKEND=tensorflow|wasm|cpu');

beforeAll(async () => {
  await initRuntime({ device: 'cpu' });
});

afterAll(() => {
  expect(tf.getBackend()).toBe(pinned);
});
