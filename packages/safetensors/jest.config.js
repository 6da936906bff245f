module.exports = { ...require('../../jest.preset.js'), displayName: 'safetensors', rootDir: __dirname };
