// Shared jest settings for every project. ts-jest transpiles only (isolatedModules): type
// checking is the `typecheck` script's job, so tests start fast.
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/../../tsconfig.base.json' }],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/src/**/*.spec.ts'],
  setupFiles: ['reflect-metadata'],
  testTimeout: 120000,
  reporters: ['default', require.resolve('./tools/scripts/jest-summary-reporter.js')],
};
