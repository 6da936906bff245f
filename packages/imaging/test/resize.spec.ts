/** Bit-exact against Pillow's Image.resize (fixtures made by goldens/make_pil_resize_goldens.py). */
import { readFileSync } from 'fs';
import * as path from 'path';
import { centerCrop, filterFromPil, resizePil, type PilFilter } from '../src';

interface Case {
  height: number;
  width: number;
  data: string;
  resized: Array<{ filter: PilFilter; height: number; width: number; data: string }>;
  crop: { height: number; width: number; data: string };
}
const golden = JSON.parse(readFileSync(path.join(__dirname, 'fixtures', 'pil-resize.json'), 'utf8')) as { pillow: string; cases: Case[] };
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));

describe(`resizePil equals Pillow ${golden.pillow} byte for byte`, () => {
  const rows = golden.cases.flatMap((c) => c.resized.map((r) => [`${c.width}x${c.height} -> ${r.width}x${r.height} ${r.filter}`, c, r] as const));
  it.each(rows)('%s', (_name, c, r) => {
    const out = resizePil({ width: c.width, height: c.height, data: bytes(c.data) }, r.height, r.width, r.filter);
    expect([out.width, out.height]).toEqual([r.width, r.height]);
    const want = bytes(r.data);
    let differing = 0;
    for (let i = 0; i < want.length; i++) if (out.data[i] !== want[i]) differing++;
    expect(differing).toBe(0);
  });

  it('covers every filter with down- and up-scaling', () => {
    for (const f of ['lanczos', 'bilinear', 'bicubic']) expect(rows.filter(([, , r]) => r.filter === f).length).toBeGreaterThanOrEqual(8);
  });
});

it('crops the centre as numpy slicing does', () => {
  for (const c of golden.cases) {
    const out = centerCrop({ width: c.width, height: c.height, data: bytes(c.data) }, c.crop.height, c.crop.width);
    expect(Buffer.from(out.data).equals(Buffer.from(bytes(c.crop.data)))).toBe(true);
  }
  expect(() => centerCrop({ width: 4, height: 4, data: new Uint8Array(48) }, 5, 4)).toThrow('cannot center-crop a 4x4 image to 4x5');
});

it('maps preprocessor_config resample values and refuses the ones it does not reproduce', () => {
  expect([1, 2, 3].map(filterFromPil)).toEqual(['lanczos', 'bilinear', 'bicubic']);
  expect(() => filterFromPil(0)).toThrow('resample=0 is not supported');
});

it('returns the input for the same size and refuses bad sizes and data', () => {
  const img = { width: 2, height: 1, data: new Uint8Array(6) };
  expect(resizePil(img, 1, 2, 'bicubic')).toBe(img);
  expect(() => resizePil(img, 0, 2, 'bicubic')).toThrow('cannot resize to 2x0');
  expect(() => resizePil({ width: 2, height: 2, data: new Uint8Array(6) }, 1, 1, 'bilinear')).toThrow('image data has 6 bytes, expected 2x2x3');
});
