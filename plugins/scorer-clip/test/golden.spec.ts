/**
 * The scorers against PyTorch on tiny random CLIP checkpoints (fixtures and golden.json made by
 * goldens/make_clip_scorer_goldens.py): transformers' CLIPModel logits_per_text, the
 * processor's pixel values and token ids, and the aesthetic MLP on the normalised image embedding.
 */
import { createHash } from 'crypto';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { isExpectedError, type PreferenceImage, type RgbImage } from '@userpref/core';
import { AestheticScore, ClipEncoder, ClipScore, parseClipImageConfig, pixelValues, resizeAndCrop } from '../src';

const FIX = path.join(__dirname, 'fixtures');

interface Golden {
  prompts: string[];
  images: string[];
  pixelValues: string;
  pixelShape: number[];
  checkpoints: Record<string, { logitScale: number; inputIds: number[][]; logitsPerText: number[][] }>;
  aesthetic: { checkpoint: string; head: string; scores: number[] };
  preprocess224: Array<{ image: string; cropSha256: string; samples: Array<{ at: [number, number, number]; value: number }>; sum: number }>;
}

let golden: Golden;
const decoded = new Map<string, RgbImage>();

async function decodePng(name: string): Promise<RgbImage> {
  const { data, info } = await sharp(path.join(FIX, 'images', `${name}.png`)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

const image = (name: string): PreferenceImage => ({ id: name, decode: async () => decoded.get(name)! });

function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
}

beforeAll(async () => {
  golden = JSON.parse(await fs.readFile(path.join(FIX, 'golden.json'), 'utf8')) as Golden;
  for (const n of [...golden.images, 'large']) decoded.set(n, await decodePng(n));
});

describe('CLIP image preprocessing (Pillow bicubic resize, center crop, CLIP mean/std)', () => {
  it("equals the Python CLIPImageProcessor's pixel values on downscaled, upscaled, portrait and square images", async () => {
    const cfg = parseClipImageConfig(JSON.parse(await fs.readFile(path.join(FIX, 'clip-tiny', 'preprocessor_config.json'), 'utf8')), 'preprocessor_config.json');
    const want = f32(golden.pixelValues);
    const per = want.length / golden.images.length;
    let maxErr = 0;
    golden.images.forEach((name, i) => {
      const { chw, height, width } = pixelValues(decoded.get(name)!, cfg);
      expect([height, width]).toEqual(golden.pixelShape.slice(2));
      for (let k = 0; k < per; k++) maxErr = Math.max(maxErr, Math.abs(chw[k] - want[i * per + k]));
    });
    // The uint8 resize is bit-exact; what remains is float32 rounding of the normalisation.
    expect(maxErr).toBeLessThan(1e-6);
  });

  it("at CLIP's real size (shortest edge 224, crop 224) the resized uint8 pixels are Pillow's, bit for bit", () => {
    const cfg = parseClipImageConfig({ size: { shortest_edge: 224 }, crop_size: { height: 224, width: 224 }, resample: 3, do_center_crop: true }, 'clip-224');
    for (const g of golden.preprocess224) {
      const crop = resizeAndCrop(decoded.get(g.image)!, cfg);
      expect([crop.height, crop.width]).toEqual([224, 224]);
      expect(createHash('sha256').update(crop.data).digest('hex')).toBe(g.cropSha256);
      const { chw } = pixelValues(decoded.get(g.image)!, cfg);
      for (const s of g.samples) expect(chw[s.at[0] * 224 * 224 + s.at[1] * 224 + s.at[2]]).toBeCloseTo(s.value, 6);
      expect(chw.reduce((a, v) => a + v, 0)).toBeCloseTo(g.sum, 1);
    }
  });
});

// clip-tiny, clip-tiny-gelu: against transformers' CLIPModel.logits_per_text. hps-tiny: a random
// open_clip model converted by goldens/convert_open_clip_to_hf.py, against open_clip itself
// (its tokenizer, its torchvision transform, HPS's cosine score: logit scale 1).
describe.each(['clip-tiny', 'clip-tiny-gelu', 'hps-tiny'])('ClipScore on %s against its PyTorch reference', (ckpt) => {
  let scorer: ClipScore;
  beforeAll(async () => {
    scorer = new ClipScore({ path: path.join(FIX, ckpt), logitScale: golden.checkpoints[ckpt].logitScale, batchSize: 3 });
    await scorer.init();
  });
  afterAll(async () => scorer.dispose());

  it('tokenises every prompt as the Python tokenizer (truncated to 77 tokens, EOT kept)', async () => {
    const enc = new ClipEncoder(path.join(FIX, ckpt), 'text');
    await enc.init();
    golden.prompts.forEach((p, i) => expect(enc.tokenize(p)).toEqual(golden.checkpoints[ckpt].inputIds[i]));
    expect(golden.checkpoints[ckpt].inputIds[3]).toHaveLength(77);
    await enc.dispose();
  });

  it('scores every (prompt, image) as the reference to 1e-4', async () => {
    const want = golden.checkpoints[ckpt].logitsPerText;
    let maxErr = 0;
    for (const [i, p] of golden.prompts.entries()) {
      const got = await scorer.score(p, golden.images.map(image));
      got.forEach((v, j) => (maxErr = Math.max(maxErr, Math.abs(v - want[i][j]))));
    }
    expect(maxErr).toBeLessThan(1e-4);
  });
});

describe('AestheticScore against the PyTorch MLP on the normalised image embedding', () => {
  it('scores every image to 1e-4 and ignores the prompt', async () => {
    const a = new AestheticScore({ path: path.join(FIX, golden.aesthetic.checkpoint), head: path.join(FIX, golden.aesthetic.head), batchSize: 8 });
    await a.init();
    const got = await a.score('anything', golden.images.map(image));
    got.forEach((v, j) => expect(Math.abs(v - golden.aesthetic.scores[j])).toBeLessThan(1e-4));
    expect(await a.score('something else', golden.images.map(image))).toEqual(got);
    await a.dispose();
  });
});

describe('missing files', () => {
  it('names the missing file and what it is for', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'scorer-clip-'));
    try {
      await fs.cp(path.join(FIX, 'clip-tiny'), dir, { recursive: true });
      await fs.rm(path.join(dir, 'onnx', 'vision_model.onnx'));
      await expect(new ClipScore({ path: dir, logitScale: 100, batchSize: 1 }).init()).rejects.toThrow(
        `${path.join(dir, 'onnx', 'vision_model.onnx')} is missing (image encoder with projection (CLIPVisionModelWithProjection))`,
      );
      // A user's mistake, not a bug: the runners print it as one line.
      expect(isExpectedError(await new ClipScore({ path: dir, logitScale: 100, batchSize: 1 }).init().catch((e) => e))).toBe(true);
      // The aesthetic predictor needs no text files, but its head.
      await fs.rm(path.join(dir, 'tokenizer.json'));
      await expect(new AestheticScore({ path: path.join(FIX, 'clip-tiny'), head: path.join(dir, 'head.safetensors'), batchSize: 1 }).init()).rejects.toThrow(
        `${path.join(dir, 'head.safetensors')} is missing (aesthetic MLP head (safetensors))`,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
