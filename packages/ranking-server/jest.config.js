module.exports = { ...require('../../jest.preset.js'), displayName: 'ranking-server', rootDir: __dirname };
