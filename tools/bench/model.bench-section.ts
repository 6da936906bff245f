/** `npm run bench -- forward`: forward / training-step throughput of the IDEFICS2 backbone. */
import { benchBackbone, benchForward } from '../../plugins/backbone-idefics2/bench/forward.bench';
import { registerSection } from './main';

registerSection({
  name: 'forward',
  run: async () => {
    const rows = [];
    for (const preset of ['tiny', 'small'] as const) {
      const r = await benchForward(preset);
      console.log(`${preset}: ${r.parameters} params, ${r.tokensPerSequence} tokens/seq; vision ${r.visionMsPerImage.toFixed(1)} ms/image; forward ${r.forwardMs.toFixed(0)} ms (${r.forwardTokensPerSecond.toFixed(0)} tok/s); train step ${r.trainStepMs.toFixed(0)} ms (${r.trainTokensPerSecond.toFixed(0)} tok/s); peak RSS ${r.peakRssMb.toFixed(0)} MB`);
      rows.push(r);
    }
    return { presets: rows };
  },
});

registerSection({
  name: 'train',
  run: async () => {
    const r = await benchBackbone({ preset: 'small' });
    console.log(`small preset, load average ${r.loadAverage.map((x) => x.toFixed(1)).join(' ')}`);
    for (const row of r.rows as unknown as Array<Record<string, number | boolean>>) {
      console.log(`vision cache ${row.visionCache ? 'on ' : 'off'} shared prefix ${row.sharedPrefix ? 'on ' : 'off'}: train ${Number(row.trainMsPerExample).toFixed(0)} ms/example, eval ${Number(row.evalPairsPerSecond).toFixed(2)} pairs/s, peak RSS ${Number(row.peakRssMb).toFixed(0)} MB`);
    }
    return r as unknown as Record<string, unknown>;
  },
});
