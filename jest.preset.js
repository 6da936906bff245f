// Shared jest settings for every project. ts-jest transpiles only (isolatedModules in
// tsconfig.base.json): type checking is the `typecheck` script's job, so tests start fast.
// hyparquet and hyparquet-writer ship ES modules only; jest (CommonJS here) transpiles them too.
// Plain Node needs nothing: it loads them through require(esm).
const fs = require('fs');
const path = require('path');
// The workspace-wide totals reporter of `npm test`; absent in workspaces made from this preset elsewhere.
const summaryReporter = path.join(__dirname, 'tools', 'scripts', 'jest-summary-reporter.js');
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(__dirname, 'tsconfig.base.json') }],
    '/node_modules/hyparquet(-writer)?/.+\\.js$': ['ts-jest', { tsconfig: path.join(__dirname, 'tsconfig.jest-esm.json'), diagnostics: false }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(hyparquet|hyparquet-writer)/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/src/**/*.spec.ts'],
  setupFiles: ['reflect-metadata'],
  testTimeout: 120000,
  reporters: fs.existsSync(summaryReporter) ? ['default', summaryReporter] : ['default'],
};
