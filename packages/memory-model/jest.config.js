module.exports = { ...require('../../jest.preset.js'), displayName: 'memory-model', rootDir: __dirname };
