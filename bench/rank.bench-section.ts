/**
 * `npm run bench -- rank serve`: ranking N candidates for one person (history once vs a full pass
 * per candidate) and a bounded loopback load run of the ranking service, both on `small`.
 */
import { benchRank } from './rank.bench';
import { benchServeLoad } from './serve-load.bench';
import { registerSection } from './main';
import { benchQuick } from './quick';

registerSection({
  name: 'rank',
  run: async () => {
    const r = benchQuick() ? await benchRank([1, 2], 1, 'tiny') : await benchRank();
    console.log(`${r.preset} preset, ${r.referencePairs} reference pairs, backend ${r.backend}, load average ${r.loadAverage.map((x) => x.toFixed(1)).join(' ')}`);
    console.log('candidates | history once ms/candidate | full pass ms/candidate | pairs fallback ms/candidate | speed-up vs full pass');
    for (const row of r.rows) {
      console.log(`${String(row.candidates).padStart(10)} | ${row.historyOnceMsPerCandidate.toFixed(1).padStart(25)} | ${row.fullPassMsPerCandidate.toFixed(1).padStart(22)} | ${row.pairsMsPerCandidate.toFixed(1).padStart(27)} | ${row.speedup.toFixed(1)}x`);
    }
    return r as unknown as Record<string, unknown>;
  },
});

registerSection({
  name: 'serve',
  run: async () => {
    const r = await benchServeLoad(benchQuick() ? { preset: 'tiny', clients: 1, requests: 2, referencePairs: 1, candidates: 2 } : {});
    console.log(`ranking service on loopback (${r.preset}, ${r.backend}): ${r.clients} clients, ${r.requests} requests of ${r.referencePairs} pairs + ${r.candidates} candidates`);
    console.log(`p50 ${r.p50Ms.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms, max ${r.maxMs.toFixed(0)} ms, ${r.requestsPerSecond.toFixed(2)} requests/s (${(r.requestsPerSecond * r.candidates).toFixed(1)} candidates/s), errors ${r.errors}${r.errors ? ` ${JSON.stringify(r.failures)}` : ''}`);
    return r as unknown as Record<string, unknown>;
  },
});
