// hyparquet and hyparquet-writer ship ES modules only; jest (CommonJS here) transpiles them with
// ts-jest. Plain Node needs nothing: it loads them through require(esm).
const preset = require('../../jest.preset.js');
module.exports = {
  ...preset,
  displayName: 'dataset-pickapic',
  rootDir: __dirname,
  transform: {
    ...preset.transform,
    '/node_modules/hyparquet(-writer)?/.+\\.js$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest-esm.json', diagnostics: false }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(hyparquet|hyparquet-writer)/)'],
};
