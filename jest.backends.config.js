// The numerical goldens, run once per tensor backend (tools/scripts/test-backends.js sets
// USERPREF_BACKEND=tensorflow, then wasm): backbone logits vs transformers, LoRA vs PEFT, the
// stand-in base vs transformers, losses and their gradients, and every gradient the runtime
// patches, against tfjs' JS cpu reference. `npm test` runs everything on the best backend of the
// machine; this keeps the other one from rotting.
const path = require('path');

const GOLDENS = {
  'packages/runtime': ['test/gradients.spec.ts'],
  'plugins/backbone-idefics2': ['test/model.spec.ts', 'test/lora.spec.ts', 'test/prefix.spec.ts', 'test/cache.spec.ts'],
  'plugins/loss-preference': ['test/losses.spec.ts'],
  'apps/demo': ['test/standin.spec.ts'],
};

const backend = process.env.USERPREF_BACKEND || '(unpinned)';
const preset = require('./jest.preset.js');
module.exports = {
  projects: Object.entries(GOLDENS).map(([dir, files]) => {
    // testTimeout and reporters are options of the whole run, not of a project.
    const { testTimeout, reporters, ...base } = require(path.join(__dirname, dir, 'jest.config.js'));
    return {
      ...base,
      displayName: `${base.displayName} @ ${backend}`,
      testMatch: files.map((f) => `<rootDir>/${f}`),
      setupFilesAfterEnv: [...(base.setupFilesAfterEnv ?? []), path.join(__dirname, 'tools', 'scripts', 'jest-backend-setup.js')],
    };
  }),
  testTimeout: preset.testTimeout,
  reporters: preset.reporters,
};
