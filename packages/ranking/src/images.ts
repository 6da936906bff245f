/**
 * Images a person hands in (files, uploads, base64), read and checked once. JPEG, PNG and WebP are
 * accepted; anything else, or a file that does not decode whole, is an ImageInputError naming the
 * file or field. Each image is decoded at once (so a bad one is refused before any model work) and
 * resized to a square as the data sets do (SPEC §2: "resized to 512x512 first", a plain stretch),
 * then kept as 8-bit RGB. Its id is the sha256 of its encoded bytes, as in @userpref/dataset-pickapic,
 * so a history image of an imported data set and the same file uploaded share one cache entry.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import type { PreferenceImage, RgbImage } from '@userpref/core';

/** The encodings this package reads. */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp'] as const;
/** SPEC §2: images are resized to 512 x 512 before the backbone's own processor. */
export const DEFAULT_IMAGE_SIZE = 512;
/** Largest image accepted, in pixels (40 megapixels): a decompression bomb is refused before decoding. */
export const MAX_INPUT_PIXELS = 40_000_000;

/** An input image that cannot be used; `source` is the file or the request field. */
export class ImageInputError extends Error {
  readonly expected = true;
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`${source}: ${reason}`);
    this.name = 'ImageInputError';
  }
}

/** A checked, decoded input image. */
export interface InputImage extends PreferenceImage {
  /** File name or request field it came from. */
  readonly name: string;
  readonly format: (typeof IMAGE_FORMATS)[number];
  /** Size of the encoded image (before the resize). */
  readonly width: number;
  readonly height: number;
}

export interface ReadImageOptions {
  /** Side of the square the image is resized to (default 512; the demo's data sets use 64). */
  readonly size?: number;
}

/** Reads and checks encoded image bytes; throws ImageInputError naming `name` when they are not a usable image. */
export async function readImage(bytes: Uint8Array, name: string, options: ReadImageOptions = {}): Promise<InputImage> {
  const size = options.size ?? DEFAULT_IMAGE_SIZE;
  if (bytes.byteLength === 0) throw new ImageInputError(name, 'empty file, not an image');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS }).metadata();
  } catch {
    throw new ImageInputError(name, 'not an image (JPEG, PNG or WebP expected)');
  }
  const format = meta.format as string | undefined;
  if (!IMAGE_FORMATS.includes(format as (typeof IMAGE_FORMATS)[number])) {
    throw new ImageInputError(name, `${format ?? 'unknown'} images are not read (JPEG, PNG or WebP expected)`);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width * height > MAX_INPUT_PIXELS) throw new ImageInputError(name, `${width}x${height} is larger than ${MAX_INPUT_PIXELS / 1e6} megapixels`);
  let rgb: RgbImage;
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error', limitInputPixels: MAX_INPUT_PIXELS })
      .resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion`);
    rgb = { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    throw new ImageInputError(name, `damaged ${format} image (${(err as Error).message.split('\n')[0]})`);
  }
  const id = createHash('sha256').update(bytes).digest('hex');
  return { id, name, format: format as InputImage['format'], width, height, decode: async () => rgb };
}

/** Reads an image file (ImageInputError for a missing file, a directory or a non-image). */
export async function readImageFile(file: string, options: ReadImageOptions = {}): Promise<InputImage> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ImageInputError(file, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not an image' : `cannot read (${code ?? (err as Error).message})`);
  }
  return readImage(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file, options);
}

/**
 * The image files named by `paths`: a file as itself, a directory as every visible file in it
 * (sorted by name, not recursive). Every file must be an image: anything else is named in an error.
 */
export async function readImagePaths(paths: readonly string[], options: ReadImageOptions = {}): Promise<InputImage[]> {
  const files: string[] = [];
  for (const p of paths) {
    let stat;
    try {
      stat = await fs.stat(p);
    } catch {
      throw new ImageInputError(p, 'no such file or directory');
    }
    if (!stat.isDirectory()) {
      files.push(p);
      continue;
    }
    const entries = (await fs.readdir(p, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name);
    if (entries.length === 0) throw new ImageInputError(p, 'the directory has no files');
    files.push(...entries.sort().map((e) => path.join(p, e)));
  }
  const out: InputImage[] = [];
  for (const f of files) out.push(await readImageFile(f, options));
  return out;
}

/** Writes decoded RGB as a PNG file (e.g. a data set's images, to rank them as files). */
export async function writePng(rgb: RgbImage, file: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await sharp(Buffer.from(rgb.data.buffer, rgb.data.byteOffset, rgb.data.byteLength), { raw: { width: rgb.width, height: rgb.height, channels: 3 } }).png().toFile(file);
}
