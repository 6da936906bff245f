module.exports = { ...require('../../jest.preset.js'), displayName: 'rank', rootDir: __dirname };
