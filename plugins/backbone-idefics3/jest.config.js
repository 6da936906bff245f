module.exports = { ...require('../../jest.preset.js'), displayName: 'backbone-idefics3', rootDir: __dirname };
