module.exports = { ...require('../../jest.preset.js'), displayName: 'pickle', rootDir: __dirname };
