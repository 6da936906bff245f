module.exports = { ...require('../../jest.preset.js'), displayName: 'preference-tokens', rootDir: __dirname };
