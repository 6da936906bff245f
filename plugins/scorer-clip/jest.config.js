module.exports = { ...require('../../jest.preset.js'), displayName: 'scorer-clip', rootDir: __dirname, testEnvironment: require.resolve('./jest.environment.js') };
