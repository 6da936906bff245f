module.exports = { ...require('../../jest.preset.js'), displayName: 'mine', rootDir: __dirname };
