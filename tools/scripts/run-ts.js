#!/usr/bin/env node
// Runs a TypeScript entry point of this workspace without a build step: ts-node in
// transpile-only mode (decorator metadata is emitted, which inversify needs).
const path = require('path');
require('ts-node').register({
  transpileOnly: true,
  project: path.join(__dirname, '..', '..', 'tsconfig.base.json'),
  compilerOptions: { sourceMap: true },
});
require('reflect-metadata');
const [, , entry, ...rest] = process.argv;
if (!entry) {
  console.error('usage: run-ts.js <entry.ts> [args...]');
  process.exit(2);
}
process.argv = [process.argv[0], path.resolve(entry), ...rest];
require(path.resolve(entry));
