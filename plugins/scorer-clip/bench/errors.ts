/**
 * Measures the scorers against the PyTorch goldens (test/fixtures/golden.json) and prints the
 * largest absolute errors; also measures what transformers.js's own CLIP image processor
 * (AutoProcessor, sharp resizing) would give instead of the Pillow-exact preprocessing here.
 *
 *   node tools/scripts/run-ts.js plugins/scorer-clip/bench/errors.ts
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import type * as Transformers from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import type { PreferenceImage, RgbImage } from '@userpref/core';
import { AestheticScore, ClipScore, parseClipImageConfig, pixelValues } from '../src';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformers = require('@huggingface/transformers') as typeof Transformers;
const FIX = path.join(__dirname, '..', 'test', 'fixtures');

async function decode(name: string): Promise<RgbImage> {
  const { data, info } = await sharp(path.join(FIX, 'images', `${name}.png`)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data) };
}

async function main(): Promise<void> {
  const golden = JSON.parse(await fs.readFile(path.join(FIX, 'golden.json'), 'utf8'));
  const images: Record<string, RgbImage> = {};
  for (const n of golden.images as string[]) images[n] = await decode(n);
  const prefs: PreferenceImage[] = (golden.images as string[]).map((n) => ({ id: n, decode: async () => images[n] }));
  for (const [ckpt, g] of Object.entries(golden.checkpoints as Record<string, { logitScale: number; logitsPerText: number[][] }>)) {
    const s = new ClipScore({ path: path.join(FIX, ckpt), logitScale: g.logitScale, batchSize: 8 });
    await s.init();
    let err = 0;
    let mag = 0;
    for (const [i, p] of (golden.prompts as string[]).entries()) {
      const got = await s.score(p, prefs);
      got.forEach((v, j) => {
        err = Math.max(err, Math.abs(v - g.logitsPerText[i][j]));
        mag = Math.max(mag, Math.abs(g.logitsPerText[i][j]));
      });
    }
    await s.dispose();
    console.log(`${ckpt}: max |score - reference| = ${err.toExponential(2)} (scores up to ${mag.toFixed(2)} in magnitude)`);
  }
  const a = new AestheticScore({ path: path.join(FIX, golden.aesthetic.checkpoint), head: path.join(FIX, golden.aesthetic.head), batchSize: 8 });
  await a.init();
  const got = await a.score('', prefs);
  console.log(`aesthetic: max |score - reference| = ${Math.max(...got.map((v, j) => Math.abs(v - golden.aesthetic.scores[j]))).toExponential(2)}`);
  await a.dispose();

  // Pixel values: ours and transformers.js's AutoProcessor against the Python processor.
  const buf = Buffer.from(golden.pixelValues, 'base64');
  const want = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const cfg = parseClipImageConfig(JSON.parse(await fs.readFile(path.join(FIX, 'clip-tiny', 'preprocessor_config.json'), 'utf8')), 'preprocessor_config.json');
  transformers.env.allowRemoteModels = false;
  const processor = await transformers.AutoProcessor.from_pretrained(path.join(FIX, 'clip-tiny'), { local_files_only: true });
  const per = want.length / golden.images.length;
  for (const [i, n] of (golden.images as string[]).entries()) {
    const mine = pixelValues(images[n], cfg).chw;
    const raw = new transformers.RawImage(Uint8ClampedArray.from(images[n].data), images[n].width, images[n].height, 3);
    const theirs = ((await processor(raw)) as { pixel_values: Transformers.Tensor }).pixel_values.data as Float32Array;
    let e1 = 0;
    let e2 = 0;
    for (let k = 0; k < per; k++) {
      e1 = Math.max(e1, Math.abs(mine[k] - want[i * per + k]));
      e2 = Math.max(e2, theirs.length === per ? Math.abs(theirs[k] - want[i * per + k]) : NaN);
    }
    console.log(`pixels ${n} (${images[n].width}x${images[n].height}): ours ${e1.toExponential(2)}, transformers.js AutoProcessor ${e2.toExponential(2)} (max |difference| to the Python processor)`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
