/**
 * Input images: JPEG, PNG and WebP decode to the requested square; anything else is refused with
 * the file or field named (text, GIF, a truncated PNG, an empty file, a directory, a missing file).
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { ImageInputError, readImage, readImageFile, readImagePaths } from '../src';

async function encoded(format: 'png' | 'jpeg' | 'webp' | 'gif', w = 20, h = 10): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) % 256;
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).toFormat(format).toBuffer();
}

describe('readImage', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ranking-images-'));
  });
  afterAll(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it.each(['png', 'jpeg', 'webp'] as const)('reads %s, resized to the requested square of RGB', async (format) => {
    const img = await readImage(await encoded(format), `a.${format}`, { size: 8 });
    expect(img.format).toBe(format);
    expect([img.width, img.height]).toEqual([20, 10]);
    const rgb = await img.decode();
    expect([rgb.width, rgb.height, rgb.data.length]).toEqual([8, 8, 8 * 8 * 3]);
    expect(img.id).toMatch(/^[0-9a-f]{64}$/);
  });

  it('gives equal bytes equal ids and different bytes different ids', async () => {
    const a = await readImage(await encoded('png'), 'a');
    const b = await readImage(await encoded('png'), 'b');
    const c = await readImage(await encoded('png', 21, 10), 'c');
    expect(a.id).toBe(b.id);
    expect(c.id).not.toBe(a.id);
  });

  it('names the source of a text file, a GIF, a truncated PNG and an empty file', async () => {
    await expect(readImage(Buffer.from('hello, not an image'), 'notes.txt')).rejects.toThrow(new ImageInputError('notes.txt', 'not an image (JPEG, PNG or WebP expected)'));
    await expect(readImage(await encoded('gif'), 'anim.gif')).rejects.toThrow('anim.gif: gif images are not read (JPEG, PNG or WebP expected)');
    const png = await encoded('png', 64, 64);
    await expect(readImage(png.subarray(0, Math.floor(png.length / 2)), 'cut.png')).rejects.toThrow(/^cut\.png: (damaged png image|not an image)/);
    await expect(readImage(Buffer.alloc(0), 'empty.png')).rejects.toThrow('empty.png: empty file, not an image');
  });

  it('reads files and directories (sorted, hidden files skipped) and names a missing path or a non-image file', async () => {
    const sub = path.join(dir, 'cands');
    await fs.mkdir(sub);
    await fs.writeFile(path.join(sub, 'b.webp'), await encoded('webp'));
    await fs.writeFile(path.join(sub, 'a.png'), await encoded('png'));
    await fs.writeFile(path.join(sub, '.DS_Store'), 'x');
    const single = path.join(dir, 'c.jpg');
    await fs.writeFile(single, await encoded('jpeg'));
    const imgs = await readImagePaths([sub, single], { size: 4 });
    expect(imgs.map((i) => path.basename(i.name))).toEqual(['a.png', 'b.webp', 'c.jpg']);

    await expect(readImageFile(path.join(dir, 'nope.png'))).rejects.toThrow(`${path.join(dir, 'nope.png')}: no such file`);
    await expect(readImagePaths([path.join(dir, 'gone')])).rejects.toThrow('no such file or directory');
    await fs.writeFile(path.join(sub, 'readme.txt'), 'a text file among the candidates');
    await expect(readImagePaths([sub])).rejects.toThrow(`${path.join(sub, 'readme.txt')}: not an image`);
    const err = await readImagePaths([sub]).catch((e: unknown) => e);
    expect((err as ImageInputError).expected).toBe(true);
  });
});
