// Appends each jest run's totals to the file named by USERPREF_TEST_SUMMARY, so that
// tools/scripts/test.js can print one closing line for the whole workspace.
const fs = require('fs');
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const file = process.env.USERPREF_TEST_SUMMARY;
    if (!file) return;
    const line = { passed: results.numPassedTests, failed: results.numFailedTests + results.numRuntimeErrorTestSuites, skipped: results.numPendingTests + results.numTodoTests };
    fs.appendFileSync(file, JSON.stringify(line) + '\n');
  }
}
module.exports = SummaryReporter;
