module.exports = { ...require('../../jest.preset.js'), displayName: 'backbone-idefics2', rootDir: __dirname };
