module.exports = { ...require('../../jest.preset.js'), displayName: 'dataset-pickapic', rootDir: __dirname };
