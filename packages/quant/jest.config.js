module.exports = { ...require('../../jest.preset.js'), displayName: 'quant', rootDir: __dirname };
