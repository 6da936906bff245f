module.exports = { ...require('../../jest.preset.js'), displayName: 'checkpoint', rootDir: __dirname };
