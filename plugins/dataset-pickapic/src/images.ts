/**
 * Image bytes to pixels. Every image is identified by the sha256 of its encoded bytes (equal
 * bytes, equal id, stored once) and decoded with sharp (libvips: JPEG, PNG, WebP), then resized
 * to a square (SPEC §2: "Images are resized to 512x512 first", a plain stretch as PIL's
 * `resize((512, 512))` does) and flattened to 8-bit RGB.
 */
import { createHash } from 'crypto';
import sharp from 'sharp';
import type { RgbImage } from '@userpref/core';

export function imageId(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface ImageCheck {
  readonly ok: boolean;
  readonly width: number;
  readonly height: number;
  readonly format: string;
  /** Why the image is unusable (when !ok). */
  readonly error?: string;
}

/**
 * Decodes the whole image once (header checks miss truncated scans) and reports its size and
 * format, or why it cannot be used. Never throws.
 */
export async function checkImage(bytes: Uint8Array): Promise<ImageCheck> {
  try {
    const { info } = await sharp(bytes, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true });
    const meta = await sharp(bytes).metadata();
    return { ok: true, width: info.width, height: info.height, format: meta.format ?? 'unknown' };
  } catch (err) {
    return { ok: false, width: 0, height: 0, format: 'unknown', error: (err as Error).message };
  }
}

/** Decodes `bytes` to `size` x `size` RGB (alpha dropped onto nothing: channels removed). */
export async function decodeRgb(bytes: Uint8Array, size: number, what: string): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error' })
      .resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    throw new Error(`cannot decode image ${what}: ${(err as Error).message}`);
  }
}

/** Encodes raw RGB as PNG or JPEG (the synthetic benchmark's images). */
export async function encodeRgb(rgb: RgbImage, format: 'png' | 'jpeg', quality = 90): Promise<Uint8Array> {
  const img = sharp(Buffer.from(rgb.data.buffer, rgb.data.byteOffset, rgb.data.byteLength), { raw: { width: rgb.width, height: rgb.height, channels: 3 } });
  const out = format === 'png' ? await img.png({ compressionLevel: 6 }).toBuffer() : await img.jpeg({ quality }).toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Runs `fn` over `items` with at most `limit` in flight (sharp works on libuv's thread pool). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
