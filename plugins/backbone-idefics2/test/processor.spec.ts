/**
 * Idefics2Processor against goldens of the real transformers Idefics2Processor
 * (goldens/make_processor_goldens.py) on the tiny checkpoint (seed 0) written by our
 * checkpoint tool: token ids must match exactly. Pixel values must match bit for bit: the resize
 * reimplements Pillow's fixed-point bilinear filter (integer arithmetic, so no platform rounding
 * differences) and the rescale/normalise repeat numpy's float64 -> float32 steps with Math.fround;
 * any resampling difference would show as at least one uint8 level, 2/255 = 0.0078.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { PreferenceExample, PreferenceImage, RgbImage } from '@userpref/core';
import type * as Transformers from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import { writeIdefics2Checkpoint } from '../src/checkpoint';
import { Idefics2Processor, idefics2ResizeTarget } from '../src/processor';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { RawImage } = require('@huggingface/transformers') as typeof Transformers;

const FIXTURES = path.join(__dirname, 'fixtures', 'processor');

interface Golden {
  example: {
    references: Array<{ prompt: string; liked: string; disliked: string }>;
    likedFirst: boolean[];
    target: { prompt: string; image0: string; image1: string; label0: number };
  };
  image_files_in_order: string[];
  text: string;
  input_ids: number[];
  attention_mask: number[];
  image_token_id: number;
  image_seq_len: number;
  readout: { positive: number; negative: number };
  special_tokens: Record<string, number>;
  pixel_values: { file: string; shape: number[]; images: string[]; sum: number };
  pixel_attention_mask_b64: string;
  variants: Record<string, { usePrompt: boolean; maxPromptLen: number | null; text: string; input_ids: number[] }>;
  padded_batch: { input_ids: number[][]; attention_mask: number[][] };
}

let tmp: string;
let ckpt: string;
let golden: Golden;
const pixels = new Map<string, RgbImage>();

async function loadPng(file: string): Promise<RgbImage> {
  const im = await RawImage.read(path.join(FIXTURES, file));
  if (im.channels !== 3) throw new Error(`${file}: expected RGB, got ${im.channels} channels`);
  return { width: im.width, height: im.height, data: Uint8Array.from(im.data) };
}

const image = (file: string): PreferenceImage => ({
  id: file,
  decode: async () => {
    const im = pixels.get(file);
    if (!im) throw new Error(`fixture image ${file} not loaded`);
    return im;
  },
});

function toExample(g: Golden['example']): PreferenceExample {
  return {
    userId: 'golden-user',
    references: g.references.map((r) => ({ prompt: r.prompt, liked: image(r.liked), disliked: image(r.disliked) })),
    likedFirst: g.likedFirst,
    target: { prompt: g.target.prompt, image0: image(g.target.image0), image1: image(g.target.image1), label0: g.target.label0 },
  };
}

beforeAll(async () => {
  golden = JSON.parse(await fs.readFile(path.join(FIXTURES, 'golden.json'), 'utf8'));
  for (const f of golden.pixel_values.images) pixels.set(f, await loadPng(f));
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics2-proc-'));
  ckpt = path.join(tmp, 'tiny');
  await writeIdefics2Checkpoint({ preset: 'tiny', outDir: ckpt, seed: 0 });
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('Idefics2Processor tokens', () => {
  it('reads the readout, special tokens and image_seq_len from the checkpoint', async () => {
    const p = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: null });
    expect(p.readout).toEqual(golden.readout);
    expect(p.tokens).toEqual(golden.special_tokens);
    expect(p.imageSeqLen).toBe(golden.image_seq_len);
    expect(p.tokens.image).toBe(golden.image_token_id);
  });

  it('renders the chat and encodes the example exactly like transformers', async () => {
    const p = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: null });
    const example = toExample(golden.example);
    expect(p.renderExample(example)).toBe(golden.text);
    const enc = p.encodeExample(example);
    expect(Array.from(enc.inputIds)).toEqual(golden.input_ids);
    expect(golden.attention_mask.every((m) => m === 1)).toBe(true);

    // One slot per image, in sequence order, target last; each starts a run of imageSeqLen <image>.
    expect(enc.imageSlots.map((s) => (s.image === 'target' ? golden.example.target.image0 : s.image.id))).toEqual(golden.image_files_in_order);
    expect(enc.imageSlots.at(-1)?.image).toBe('target');
    const runs: number[] = [];
    golden.input_ids.forEach((id, i) => {
      if (id === golden.image_token_id && golden.input_ids[i - 1] !== golden.image_token_id) runs.push(i);
    });
    expect(enc.imageSlots.map((s) => s.start)).toEqual(runs);
    for (const s of enc.imageSlots) {
      expect(golden.input_ids.slice(s.start, s.start + p.imageSeqLen).every((id) => id === golden.image_token_id)).toBe(true);
    }
    // The sequence ends with the generation prompt "Assistant:" (no answer token yet).
    expect(p.decode(enc.inputIds.slice(-3))).toMatch(/Assistant:$/);
  });

  it('matches transformers without prompts and with prompts cut to 10 characters', async () => {
    for (const v of Object.values(golden.variants)) {
      const p = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: v.usePrompt, maxPromptLen: v.maxPromptLen });
      const example = toExample(golden.example);
      expect(p.renderExample(example)).toBe(v.text);
      expect(Array.from(p.encodeExample(example).inputIds)).toEqual(v.input_ids);
    }
  });

  it("reads transformers 5's layout: image processor inside processor_config.json, chat_template.jinja", async () => {
    // What save_pretrained of transformers 5 writes (e.g. the demo's stand-in base): no
    // preprocessor_config.json, the image processor's settings nested, the template in its own file.
    const v5 = path.join(tmp, 'tiny-v5');
    await fs.cp(ckpt, v5, { recursive: true });
    const pre = JSON.parse(await fs.readFile(path.join(v5, 'preprocessor_config.json'), 'utf8'));
    const proc = JSON.parse(await fs.readFile(path.join(v5, 'processor_config.json'), 'utf8'));
    const tokCfg = JSON.parse(await fs.readFile(path.join(v5, 'tokenizer_config.json'), 'utf8'));
    const template = proc.chat_template ?? tokCfg.chat_template;
    expect(typeof template).toBe('string');
    delete proc.chat_template;
    delete tokCfg.chat_template;
    await fs.writeFile(path.join(v5, 'chat_template.jinja'), template);
    await fs.writeFile(path.join(v5, 'processor_config.json'), JSON.stringify({ ...proc, image_processor: pre }));
    await fs.writeFile(path.join(v5, 'tokenizer_config.json'), JSON.stringify(tokCfg));
    await fs.rm(path.join(v5, 'preprocessor_config.json'));

    const p = await Idefics2Processor.fromPretrained(v5, { usePrompt: true, maxPromptLen: null });
    const example = toExample(golden.example);
    expect(Array.from(p.encodeExample(example).inputIds)).toEqual(golden.input_ids);
    const images = golden.pixel_values.images.map((f) => pixels.get(f)!);
    const ours = p.preprocessImages(images);
    const theirs = (await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: null })).preprocessImages(images);
    expect(Array.from(ours.pixelValues)).toEqual(Array.from(theirs.pixelValues));

    // Neither place holds the settings: the error says where they were looked for.
    await fs.writeFile(path.join(v5, 'processor_config.json'), JSON.stringify(proc));
    await expect(Idefics2Processor.fromPretrained(v5, { usePrompt: true, maxPromptLen: null })).rejects.toThrow(/preprocessor_config\.json, or "image_processor" in processor_config\.json/);
  });

  it('cuts prompts by characters (code points), not UTF-16 units or tokens', async () => {
    const p = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: 3 });
    expect(p.userText('🐱🐶 cat')).toBe("The prompt is '🐱🐶 ' Score for this image?");
    expect(p.userText('ab')).toBe("The prompt is 'ab' Score for this image?");
  });

  it('collates right-padded like the tokenizer with padding_side="right"', async () => {
    const full = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: null });
    const bare = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: false, maxPromptLen: null });
    const example = toExample(golden.example);
    const batch = full.collate([full.encodeExample(example), bare.encodeExample(example)]);
    const T = batch.seqLen;
    expect(batch.batchSize).toBe(2);
    const rows = (a: Int32Array) => [Array.from(a.slice(0, T)), Array.from(a.slice(T, 2 * T))];
    expect(rows(batch.inputIds)).toEqual(golden.padded_batch.input_ids);
    expect(rows(batch.attentionMask)).toEqual(golden.padded_batch.attention_mask);
    const realLengths = golden.padded_batch.attention_mask.map((r) => r.reduce((a, b) => a + b, 0));
    expect(Array.from(batch.lengths)).toEqual(realLengths);
    expect(Array.from(batch.lastIndex)).toEqual(realLengths.map((l) => l - 1));
    expect(realLengths[0]).toBeGreaterThan(realLengths[1]);
  });

  it('rejects malformed examples and options with clear errors', async () => {
    const p = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: null });
    const bad = { ...toExample(golden.example), likedFirst: [true] };
    expect(() => p.encodeExample(bad)).toThrow('golden-user: 2 references but 1 likedFirst flags');
    await expect(Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: -1 })).rejects.toThrow('maxPromptLen');
    await expect(Idefics2Processor.fromPretrained(path.join(tmp, 'missing'), { usePrompt: true, maxPromptLen: null })).rejects.toThrow(/config\.json/);
  });
});

describe('Idefics2Processor images', () => {
  it('resizes like Idefics2ImageProcessor (longest edge, then shortest edge per side)', () => {
    // Hand-worked: 512x512 with 378/448 -> 448x448 (the paper's setting); 36x24 (h x w) with
    // 28/32 -> h 32, w trunc(32 * 24/36) = 21 -> raised to 28; 20x20 -> 28x28; 30x40 -> 30 x 32
    // then h trunc(32 / (40/30)) = 24 -> 28.
    expect(idefics2ResizeTarget(512, 512, 378, 448)).toEqual([448, 448]);
    expect(idefics2ResizeTarget(36, 24, 28, 32)).toEqual([32, 28]);
    expect(idefics2ResizeTarget(20, 20, 28, 32)).toEqual([28, 28]);
    expect(idefics2ResizeTarget(30, 40, 28, 32)).toEqual([28, 32]);
    expect(idefics2ResizeTarget(1000, 500, 378, 980)).toEqual([980, 490]);
  });

  it('matches transformers pixel_values and pixel_attention_mask', async () => {
    const p = await Idefics2Processor.fromPretrained(ckpt, { usePrompt: true, maxPromptLen: null });
    const images = golden.pixel_values.images.map((f) => pixels.get(f) as RgbImage);
    const out = p.preprocessImages(images);
    const [n, c, h, w] = golden.pixel_values.shape;
    expect([out.count, 3, out.height, out.width]).toEqual([n, c, h, w]);

    const buf = await fs.readFile(path.join(FIXTURES, golden.pixel_values.file));
    const ref = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    expect(ref.length).toBe(out.pixelValues.length);
    let maxDiff = 0;
    let sum = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(ref[i] - out.pixelValues[i]));
      sum += out.pixelValues[i];
    }
    expect(maxDiff).toBe(0); // measured: bit-exact on all 18,432 values
    expect(sum).toBeCloseTo(golden.pixel_values.sum, 3);

    const mask = Buffer.from(golden.pixel_attention_mask_b64, 'base64');
    expect(Buffer.compare(Buffer.from(out.pixelAttentionMask), mask)).toBe(0);
    // Padding is zero in pixel space (mid-grey after normalisation is 0 too, so check the mask).
    const real = out.pixelAttentionMask.reduce((a, b) => a + b, 0);
    expect(real).toBe(out.sizes.reduce((a, s) => a + s.height * s.width, 0));
  });

  it('rejects image settings it does not implement', async () => {
    const dir = path.join(tmp, 'split');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: dir, seed: 0 });
    const file = path.join(dir, 'preprocessor_config.json');
    const cfg = JSON.parse(await fs.readFile(file, 'utf8'));
    await fs.writeFile(file, JSON.stringify({ ...cfg, do_image_splitting: true }));
    await expect(Idefics2Processor.fromPretrained(dir, { usePrompt: true, maxPromptLen: null })).rejects.toThrow('do_image_splitting=true is not supported');
    await fs.writeFile(file, JSON.stringify({ ...cfg, resample: 3 }));
    await expect(Idefics2Processor.fromPretrained(dir, { usePrompt: true, maxPromptLen: null })).rejects.toThrow('resample=3 is not supported');
  });
});
