import type { RgbImage } from '@userpref/core';

/**
 * The center crop of the Hugging Face image processors (numpy slicing): top = (h - ch) // 2,
 * left = (w - cw) // 2. The image must be at least as large as the crop.
 */
export function centerCrop(img: RgbImage, height: number, width: number): RgbImage {
  if (img.height === height && img.width === width) return img;
  if (img.height < height || img.width < width) throw new Error(`cannot center-crop a ${img.width}x${img.height} image to ${width}x${height}`);
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const out = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) out.set(img.data.subarray(((top + y) * img.width + left) * 3, ((top + y) * img.width + left + width) * 3), y * width * 3);
  return { width, height, data: out };
}
