import { centerCrop, parseClipImageConfig, resizePil, shortestEdgeTarget } from '../src';

describe('preprocessor_config.json of the real checkpoints', () => {
  it('reads the older integer form (openai/clip-vit-large-patch14, Xenova/*) and the dict form (laion CLIP-H)', () => {
    const openai = parseClipImageConfig(
      { crop_size: 224, do_center_crop: true, do_normalize: true, do_resize: true, feature_extractor_type: 'CLIPFeatureExtractor', image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711], resample: 3, size: 224 },
      'openai',
    );
    expect(openai).toEqual({ resize: { shortestEdge: 224 }, resample: 3, crop: { height: 224, width: 224 }, rescaleFactor: 1 / 255, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] });
    const laion = parseClipImageConfig({ crop_size: { height: 224, width: 224 }, size: { shortest_edge: 224 }, do_rescale: true, rescale_factor: 0.00392156862745098, resample: 3 }, 'laion');
    expect(laion.resize).toEqual({ shortestEdge: 224 });
    expect(laion.crop).toEqual({ height: 224, width: 224 });
  });

  it('refuses what it does not implement, naming the file', () => {
    expect(() => parseClipImageConfig({ size: 224, resample: 1 }, 'x.json')).toThrow('x.json: resample=1 is not supported');
    expect(() => parseClipImageConfig({ size: { longest_edge: 224 } }, 'x.json')).toThrow('x.json: size {"longest_edge":224} is not supported');
    expect(() => parseClipImageConfig({ size: 224, image_mean: [0.5, 0.5] }, 'x.json')).toThrow('x.json: image_mean must be a number or 3 numbers');
  });
});

describe('resize and crop arithmetic', () => {
  it("targets the shortest edge as transformers does: the long side int(s * long / short)", () => {
    expect(shortestEdgeTarget(384, 512, 224)).toEqual([224, 298]); // 224 * 512 / 384 = 298.67
    expect(shortestEdgeTarget(512, 384, 224)).toEqual([298, 224]);
    expect(shortestEdgeTarget(80, 96, 32)).toEqual([32, 38]); // 38.4
    expect(shortestEdgeTarget(50, 50, 32)).toEqual([32, 32]);
  });

  it('center-crops with the top-left offset rounded down, and keeps a constant image constant', () => {
    // 5 x 4 image whose pixel value is its index; crop 2 x 3 -> top (4-2)//2 = 1, left (5-3)//2 = 1.
    const img = { width: 5, height: 4, data: Uint8Array.from({ length: 60 }, (_, i) => Math.floor(i / 3)) };
    const c = centerCrop(img, 2, 3);
    expect(Array.from(c.data.filter((_, i) => i % 3 === 0))).toEqual([6, 7, 8, 11, 12, 13]);
    // Bicubic weights sum to one: a constant image stays constant when up- or downscaled.
    const flat = { width: 7, height: 5, data: new Uint8Array(7 * 5 * 3).fill(200) };
    for (const [h, w] of [[3, 4], [11, 13], [5, 2]]) expect(new Set(resizePil(flat, h, w, 3).data)).toEqual(new Set([200]));
  });
});
