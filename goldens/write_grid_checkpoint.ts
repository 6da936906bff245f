/**
 * Writes the tiny checkpoint with a position grid of <perSide> (default 19) for
 * goldens/make_vision_grid_golden.py:
 *     node tools/scripts/run-ts.js goldens/write_grid_checkpoint.ts tmp/idefics2-grid19 19
 */
import { writeGridCheckpoint } from '../plugins/backbone-idefics2/test/grid-checkpoint';

const [out, perSide = '19'] = process.argv.slice(2);
if (!out) {
  console.error('usage: write_grid_checkpoint.ts <outDir> [perSide]');
  process.exit(2);
}
writeGridCheckpoint(out, Number(perSide)).then(
  () => console.log(`wrote ${out} (numPatchesPerSide ${perSide})`),
  (e: Error) => {
    console.error(e);
    process.exit(1);
  },
);
