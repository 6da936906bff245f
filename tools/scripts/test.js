#!/usr/bin/env node
// `npm test`: every project's jest suite through Nx, then one closing line with the totals.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const summary = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'userpref-test-')), 'summary.jsonl');
const nx = path.join(__dirname, '..', '..', 'node_modules', '.bin', 'nx');
const r = spawnSync(nx, ['run-many', '-t', 'test', '--parallel=2', '--output-style=stream', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, USERPREF_TEST_SUMMARY: summary, NX_DAEMON: process.env.NX_DAEMON ?? 'false' },
});
const totals = { passed: 0, failed: 0, skipped: 0 };
if (fs.existsSync(summary)) {
  for (const line of fs.readFileSync(summary, 'utf8').split('\n').filter(Boolean)) {
    const t = JSON.parse(line);
    totals.passed += t.passed;
    totals.failed += t.failed;
    totals.skipped += t.skipped;
  }
}
const code = r.status ?? 1;
if (code !== 0 && totals.failed === 0) totals.failed = 1; // a project failed before its tests ran
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(code);
