module.exports = { ...require('../../jest.preset.js'), displayName: 'loss-preference', rootDir: __dirname };
