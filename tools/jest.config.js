// tools/ sits one level below the root (packages sit two), so the tsconfig path is overridden.
const preset = require('../jest.preset.js');
module.exports = {
  ...preset,
  displayName: 'tools',
  rootDir: __dirname,
  transform: { ...preset.transform, '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/../tsconfig.base.json' }] },
};
