/**
 * The tfjs Idefics3 (processor and model) against transformers on the committed tiny Idefics3 and
 * SmolVLM-shaped checkpoints (goldens/make_idefics3_goldens.py): tile layouts and pixel values
 * bit for bit, token ids exactly, last-position logits to 1e-5 relative, alone and right-padded.
 */
import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs-core';
import { initRuntime } from '@userpref/runtime';
import type { ReferencePair } from '@userpref/core';
import { Idefics3Model } from '../src/model/idefics3';
import { Idefics3Processor, type TileLayout } from '../src/processor/processor';
import { processIdefics3Image, type ProcessedImage } from '../src/processor/image';
import { ARCHS, checkpointDir, fixtureImage, readGolden, readImage, relErr, type Golden, tileBatch } from './fixtures';
import { padRows } from '@userpref/mllm';

const TOL = 1e-5;
const PROMPTS = ['a red car', 'a cat on a chair', 'a castle at sunset', 'a robot in a garden', 'an old man, oil painting'];

/** The golden script's chat: n pairs (pair i: image refs[2i] disliked, refs[2i+1] liked, disliked first), then the target. */
function chat(p: Idefics3Processor, refs: number[], targetPrompt: string) {
  const references: ReferencePair[] = [];
  for (let i = 0; i < refs.length / 2; i++) references.push({ prompt: PROMPTS[i], disliked: fixtureImage(refs[2 * i]), liked: fixtureImage(refs[2 * i + 1]) });
  return p.messages({ userId: 'u', references, likedFirst: references.map(() => false), target: { prompt: targetPrompt } }).messages;
}

describe.each(ARCHS)('%s vs transformers', (arch) => {
  let golden: Golden;
  let model: Idefics3Model;
  let proc: Idefics3Processor;
  let procNoPrompt: Idefics3Processor;
  const processed = new Map<number, ProcessedImage>();

  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
    golden = await readGolden(arch);
    model = await Idefics3Model.load(checkpointDir(arch));
    const expected = { imageSeqLen: model.config.imageSeqLen, tileSize: model.config.vision.imageSize, imageTokenId: model.config.imageTokenId };
    proc = await Idefics3Processor.fromPretrained(checkpointDir(arch), { usePrompt: true, maxPromptLen: null }, expected);
    procNoPrompt = await Idefics3Processor.fromPretrained(checkpointDir(arch), { usePrompt: false, maxPromptLen: null }, expected);
    for (let i = 0; i < golden.images.length; i++) processed.set(i, processIdefics3Image(await readImage(i), proc.imageConfig));
  });

  afterAll(() => model?.dispose());

  const layouts = (images: number[]): TileLayout[] => images.map((i) => processed.get(i)!);
  const tiles = (images: number[]): tf.Tensor4D => tileBatch(images.map((i) => processed.get(i)!));

  it('reads every size from config.json and uses every tensor of the checkpoint', () => {
    expect(model.loadReport.unused).toEqual([]);
    expect(model.config.imageSeqLen).toBe(golden.image_seq_len);
    expect(model.loadReport.tiedHead).toBe(arch === 'smolvlm-tiny');
    expect(model.config.text.slidingWindow).toBeNull();
  });

  it('splits images into the same tiles and pixel values as Idefics3ImageProcessorPil, bit for bit', () => {
    golden.images.forEach((g, i) => {
      const p = processed.get(i)!;
      const hash = createHash('sha256').update(Buffer.from(p.pixelValues.buffer, p.pixelValues.byteOffset, p.pixelValues.byteLength)).digest('hex');
      expect({ i, rows: p.rows, cols: p.cols, tiles: p.tiles, shape: [3, p.size, p.size], hash }).toEqual({ i, rows: g.rows, cols: g.cols, tiles: g.tiles, shape: g.shape, hash: g.sha256 });
    });
  });

  it('renders the chat and tokenises the tiled prompt as Idefics3Processor does', () => {
    const g = golden.single;
    const text = proc.renderChat(chat(proc, g.images.slice(0, -1), 'a red car'), true);
    expect(text).toBe(g.text);
    const enc = proc.encode(chat(proc, g.images.slice(0, -1), 'a red car'), layouts(g.images));
    expect(Array.from(enc.inputIds)).toEqual(g.input_ids);
    expect(enc.inputIds[enc.targetStart]).toBe(proc.tokens.fakeImage);
    const [a, b] = golden.padded.images;
    expect(Array.from(procNoPrompt.encode(chat(procNoPrompt, a.slice(0, -1), 'a castle at sunset'), layouts(a)).inputIds)).toEqual(golden.padded.input_ids[0]);
    expect(Array.from(proc.encode(chat(proc, b.slice(0, -1), 'a robot in a garden'), layouts(b)).inputIds)).toEqual(golden.padded.input_ids[1]);
  });

  it('without splitting (imageSplitting: false) every image is one tile: pixels, ids and logits match', async () => {
    const g = golden.nosplit;
    const expected = { imageSeqLen: model.config.imageSeqLen, tileSize: model.config.vision.imageSize, imageTokenId: model.config.imageTokenId };
    const ns = await Idefics3Processor.fromPretrained(checkpointDir(arch), { usePrompt: true, maxPromptLen: null, imageSplitting: false }, expected);
    const ims: ProcessedImage[] = [];
    for (let i = 0; i < g.images.length; i++) ims.push(processIdefics3Image(await readImage(i), ns.imageConfig));
    ims.forEach((p, i) => {
      const hash = createHash('sha256').update(Buffer.from(p.pixelValues.buffer, p.pixelValues.byteOffset, p.pixelValues.byteLength)).digest('hex');
      expect({ i, rows: p.rows, cols: p.cols, tiles: p.tiles, hash }).toEqual({ i, rows: 0, cols: 0, tiles: 1, hash: g.images[i].sha256 });
    });
    const images = golden.single.images;
    const enc = ns.encode(chat(ns, images.slice(0, -1), 'a red car'), images.map(() => ({ rows: 0, cols: 0 })));
    expect(Array.from(enc.inputIds)).toEqual(g.input_ids);
    const data = new Float32Array(images.length * ims[0].pixelValues.length);
    images.forEach((i, k) => data.set(ims[i].pixelValues, k * ims[i].pixelValues.length));
    const px = tf.tensor4d(data, [images.length, 3, ims[0].size, ims[0].size]);
    const logits = model.forward(g.input_ids, 1, g.input_ids.length, px);
    expect(relErr(logits.dataSync(), g.logits)).toBeLessThan(TOL);
    tf.dispose([px, logits]);
  });

  it('connector output (pixel shuffle + projection) of a tile matches', () => {
    const g = golden.single;
    const last = g.images[g.images.length - 1];
    const p = processed.get(last)!;
    const plane = 3 * p.size * p.size;
    const px = tf.tensor4d(p.pixelValues.slice((p.tiles - 1) * plane), [1, 3, p.size, p.size]);
    const conn = model.encodeTiles(px);
    expect(relErr(conn.dataSync(), g.connector_last_tile)).toBeLessThan(TOL);
    tf.dispose([px, conn]);
  });

  it('last-position logits of 2 pairs + target (5 tiled images) match', () => {
    const g = golden.single;
    const px = tiles(g.images);
    const logits = model.forward(g.input_ids, 1, g.input_ids.length, px);
    const err = relErr(logits.dataSync(), g.logits);
    expect(err).toBeLessThan(TOL);
    tf.dispose([px, logits]);
  });

  it('a right-padded batch of sequences with different tile counts matches, and equals each sequence alone', () => {
    const g = golden.padded;
    const { ids, mask, len: T } = padRows(g.input_ids.map((s) => Int32Array.from(s)), g.pad_token_id);
    const px = tiles([...g.images[0], ...g.images[1]]);
    const logits = model.forward(ids, 2, T, px, mask);
    const rows = tf.split(logits, 2, 0).map((t) => t.dataSync());
    expect(relErr(rows[0], g.logits[0])).toBeLessThan(TOL);
    expect(relErr(rows[1], g.logits[1])).toBeLessThan(TOL);
    expect(relErr(rows[0], g.logits_unpadded[0])).toBeLessThan(TOL);
    expect(relErr(rows[1], g.logits_unpadded[1])).toBeLessThan(TOL);
    tf.dispose([px, logits]);
  });
});
