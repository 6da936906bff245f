module.exports = { ...require('../../jest.preset.js'), displayName: 'mllm', rootDir: __dirname };
