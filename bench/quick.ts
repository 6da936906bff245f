/**
 * Quick mode of `npm run bench` (`USERPREF_BENCH_QUICK=1`, or `--quick` among the section names):
 * every section does the least that still runs its code and prints its table (the tiny preset,
 * the smallest sizes, one repetition, no warm-up beyond what the code needs), so the README's
 * bench commands can be run by the README test in seconds. Its numbers measure nothing.
 */
export function benchQuick(): boolean {
  return process.env.USERPREF_BENCH_QUICK === '1';
}
