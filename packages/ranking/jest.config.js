module.exports = { ...require('../../jest.preset.js'), displayName: 'ranking', rootDir: __dirname };
