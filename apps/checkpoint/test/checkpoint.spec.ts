/**
 * The random IDEFICS2 checkpoint writer: files parse and agree with each other, the tensor list
 * and parameter count match what transformers builds for the same config, weights follow the
 * _init_weights recipe, bytes are deterministic in the seed, sharding writes a valid index, and the
 * tokenizer loads offline in @huggingface/transformers and encodes like Python `tokenizers`.
 */
import { execFile } from 'child_process';
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import type * as Transformers from '@huggingface/transformers' with { 'resolution-mode': 'import' };
import { CheckpointReader, SafetensorsFile } from '@userpref/safetensors';
import { writeIdefics2Checkpoint, countParameters, presetConfig, PRESETS } from '@userpref/backbone-idefics2';

// transformers.js ships a CommonJS build for Node, but its typings are ESM-only under node16.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { AutoTokenizer, env } = require('@huggingface/transformers') as typeof Transformers;

const ROOT = path.join(__dirname, '..', '..', '..');
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'idefics2-ckpt-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const readJson = async (dir: string, name: string) => JSON.parse(await fs.readFile(path.join(dir, name), 'utf8'));

function stats(a: Float32Array): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of a) {
    s += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = s / a.length;
  let q = 0;
  for (const v of a) q += (v - mean) ** 2;
  return { mean, std: Math.sqrt(q / a.length), min, max };
}

describe('writeIdefics2Checkpoint (tiny)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmp, 'tiny');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: dir, seed: 7 });
  });

  it('writes the Hugging Face file set, every JSON file parses', async () => {
    const files = (await fs.readdir(dir)).sort();
    expect(files).toEqual(
      [
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'preprocessor_config.json',
        'processor_config.json',
        'special_tokens_map.json',
        'tokenizer.json',
        'tokenizer_config.json',
      ].sort(),
    );
    for (const f of files.filter((f) => f.endsWith('.json'))) await expect(readJson(dir, f)).resolves.toBeTruthy();
  });

  it('config.json has the idefics2-8b structure and agrees with the tokenizer and processor files', async () => {
    const config = await readJson(dir, 'config.json');
    expect(config.model_type).toBe('idefics2');
    expect(config.architectures).toEqual(['Idefics2ForConditionalGeneration']);
    expect(config.tie_word_embeddings).toBe(false);
    expect(config.vision_config.model_type).toBe('idefics2_vision');
    expect(config.perceiver_config.model_type).toBe('idefics2_perceiver');
    expect(config.text_config.model_type).toBe('mistral');
    expect(config.perceiver_config.hidden_size).toBe(config.text_config.hidden_size);

    const tokenizer = await readJson(dir, 'tokenizer.json');
    const added = new Map<string, number>(tokenizer.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id]));
    const baseVocab = Object.keys(tokenizer.model.vocab).length;
    // Added tokens after the base vocabulary, as ids 32000..32002 of idefics2-8b.
    expect([added.get('<fake_token_around_image>'), added.get('<image>'), added.get('<end_of_utterance>')]).toEqual([baseVocab, baseVocab + 1, baseVocab + 2]);
    expect(config.image_token_id).toBe(added.get('<image>'));
    expect(config.text_config.vocab_size).toBe(baseVocab + 3);
    expect(config.text_config.vocab_size).toBeGreaterThanOrEqual(300);
    expect(config.text_config.vocab_size).toBeLessThanOrEqual(400);
    expect(tokenizer.model.byte_fallback).toBe(true);
    for (let b = 0; b < 256; b++) expect(tokenizer.model.vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`]).toBeDefined();

    const processor = await readJson(dir, 'processor_config.json');
    expect(processor.image_seq_len).toBe(config.perceiver_config.resampler_n_latents);
    expect(processor.chat_template).toContain('<end_of_utterance>');
    const pre = await readJson(dir, 'preprocessor_config.json');
    expect(pre.image_processor_type).toBe('Idefics2ImageProcessor');
    expect(pre.do_image_splitting).toBe(false);
    expect(pre.size).toEqual({ longest_edge: config.vision_config.image_size, shortest_edge: PRESETS.tiny.image.shortestEdge });
    expect(pre.size.longest_edge % config.vision_config.patch_size).toBe(0);
    const tc = await readJson(dir, 'tokenizer_config.json');
    expect([tc.bos_token, tc.eos_token, tc.unk_token, tc.pad_token, tc.add_bos_token]).toEqual(['<s>', '</s>', '<unk>', '<unk>', true]);
  });

  it('holds exactly the tensors transformers builds for this config, under 1M parameters', async () => {
    const reader = await CheckpointReader.open(dir);
    try {
      const names = reader.names();
      // Counted by torch: sum(p.numel() for p in Idefics2ForConditionalGeneration(config).state_dict().values())
      // for this preset's config (transformers 5.18), 83 tensors.
      expect(names).toHaveLength(83);
      let total = 0;
      for (const n of names) total += reader.entry(n).shape.reduce((a, b) => a * b, 1);
      expect(total).toBe(286240);
      expect(total).toBeLessThan(1_000_000);
      expect(countParameters(await readJson(dir, 'config.json'))).toBe(total);
      const config = await readJson(dir, 'config.json');
      const t = config.text_config;
      const v = config.vision_config;
      const p = config.perceiver_config;
      const shape = (n: string) => reader.entry(n).shape;
      expect(shape('model.text_model.embed_tokens.weight')).toEqual([t.vocab_size, t.hidden_size]);
      expect(shape('lm_head.weight')).toEqual([t.vocab_size, t.hidden_size]);
      expect(shape('model.text_model.layers.1.self_attn.k_proj.weight')).toEqual([t.num_key_value_heads * t.head_dim, t.hidden_size]);
      expect(shape('model.vision_model.embeddings.patch_embedding.weight')).toEqual([v.hidden_size, 3, v.patch_size, v.patch_size]);
      expect(shape('model.vision_model.embeddings.position_embedding.weight')).toEqual([(v.image_size / v.patch_size) ** 2, v.hidden_size]);
      expect(shape('model.connector.modality_projection.gate_proj.weight')).toEqual([t.intermediate_size, v.hidden_size]);
      expect(shape('model.connector.perceiver_resampler.latents')).toEqual([p.resampler_n_latents, p.hidden_size]);
      expect(shape('model.connector.perceiver_resampler.layers.0.self_attn.q_proj.weight')).toEqual([p.resampler_n_heads * p.resampler_head_dim, p.hidden_size]);
      expect(shape('model.connector.perceiver_resampler.layers.1.mlp.up_proj.weight')).toEqual([4 * p.hidden_size, p.hidden_size]);
    } finally {
      await reader.close();
    }
  });

  it('initialises like _init_weights: N(0, 0.02) weights, unit norms, zero biases, zero padding row', async () => {
    const reader = await CheckpointReader.open(dir);
    try {
      const q = stats(await reader.readFloat32('model.text_model.layers.0.mlp.gate_proj.weight'));
      expect(Math.abs(q.mean)).toBeLessThan(0.002);
      expect(q.std).toBeGreaterThan(0.018);
      expect(q.std).toBeLessThan(0.022);
      for (const n of ['model.text_model.norm.weight', 'model.vision_model.encoder.layers.0.layer_norm1.weight', 'model.connector.perceiver_resampler.norm.weight']) {
        expect(stats(await reader.readFloat32(n))).toMatchObject({ min: 1, max: 1 });
      }
      for (const n of ['model.vision_model.encoder.layers.1.mlp.fc1.bias', 'model.vision_model.post_layernorm.bias']) {
        expect(stats(await reader.readFloat32(n))).toMatchObject({ min: 0, max: 0 });
      }
      const config = await readJson(dir, 'config.json');
      const emb = await reader.readFloat32('model.text_model.embed_tokens.weight');
      const d = config.text_config.hidden_size;
      const pad = config.text_config.pad_token_id;
      expect(stats(emb.subarray(pad * d, (pad + 1) * d))).toMatchObject({ min: 0, max: 0 });
      expect(stats(emb.subarray((pad + 1) * d, (pad + 2) * d)).std).toBeGreaterThan(0.005);
      // Latents are distinct (N(0, 1)), not the all-ones of transformers' init.
      const lat = stats(await reader.readFloat32('model.connector.perceiver_resampler.latents'));
      expect(lat.std).toBeGreaterThan(0.8);
      expect(lat.std).toBeLessThan(1.2);
    } finally {
      await reader.close();
    }
  });

  it('is byte-for-byte deterministic in the seed, and the seed matters', async () => {
    const again = path.join(tmp, 'tiny-again');
    const other = path.join(tmp, 'tiny-other');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: again, seed: 7 });
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: other, seed: 8 });
    for (const f of await fs.readdir(dir)) {
      expect(Buffer.compare(await fs.readFile(path.join(dir, f)), await fs.readFile(path.join(again, f)))).toBe(0);
    }
    const a = await fs.readFile(path.join(dir, 'model.safetensors'));
    const b = await fs.readFile(path.join(other, 'model.safetensors'));
    expect(a.length).toBe(b.length);
    expect(Buffer.compare(a, b)).not.toBe(0);
  });
});

describe('sharding and dtypes', () => {
  it('writes valid shards + index whose tensors equal the single-file ones', async () => {
    const single = path.join(tmp, 'single');
    const sharded = path.join(tmp, 'sharded');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: single, seed: 3 });
    const res = await writeIdefics2Checkpoint({ preset: 'tiny', outDir: sharded, seed: 3, shardBytes: 300_000 });
    const files = await fs.readdir(sharded);
    expect(files).not.toContain('model.safetensors');
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort();
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);

    const index = await readJson(sharded, 'model.safetensors.index.json');
    let bytes = 0;
    const seen = new Set<string>();
    for (const shard of shards) {
      const f = await SafetensorsFile.open(path.join(sharded, shard));
      for (const e of f.entries()) {
        expect(index.weight_map[e.name]).toBe(shard);
        expect(e.end - e.begin).toBeLessThanOrEqual(300_000);
        bytes += e.end - e.begin;
        seen.add(e.name);
      }
      await f.close();
    }
    expect(Object.keys(index.weight_map).sort()).toEqual([...seen].sort());
    expect(seen.size).toBe(res.tensors);
    expect(index.metadata.total_size).toBe(bytes);
    expect(bytes).toBe(res.parameters * 4);

    const a = await CheckpointReader.open(single);
    const b = await CheckpointReader.open(sharded);
    try {
      for (const n of ['model.text_model.layers.1.self_attn.o_proj.weight', 'lm_head.weight', 'model.vision_model.embeddings.patch_embedding.weight']) {
        expect(await b.readFloat32(n)).toEqual(await a.readFloat32(n));
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('writes F16 and BF16 weights that round the F32 values, and says so in config.json', async () => {
    const f32 = path.join(tmp, 'f32');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: f32, seed: 5 });
    const ref = await CheckpointReader.open(f32);
    for (const [dtype, torch, relTol] of [
      ['F16', 'float16', 2 ** -11],
      ['BF16', 'bfloat16', 2 ** -8],
    ] as const) {
      const out = path.join(tmp, dtype);
      await writeIdefics2Checkpoint({ preset: 'tiny', outDir: out, seed: 5, dtype });
      expect((await readJson(out, 'config.json')).torch_dtype).toBe(torch);
      const r = await CheckpointReader.open(out);
      const name = 'model.text_model.layers.0.self_attn.q_proj.weight';
      expect(r.entry(name).dtype).toBe(dtype);
      const x = await ref.readFloat32(name);
      const y = await r.readFloat32(name);
      let worst = 0;
      for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(y[i] - x[i]) - Math.abs(x[i]) * relTol);
      expect(worst).toBeLessThanOrEqual(1e-7);
      await r.close();
    }
    await ref.close();
  });

  it('the small preset is larger but still a CPU model', () => {
    const n = countParameters(presetConfig('small'));
    expect(n).toBe(1205568);
    expect(n).toBeGreaterThan(countParameters(presetConfig('tiny')));
  });
});

describe('tokenizer', () => {
  let dir: string;
  beforeAll(async () => {
    dir = path.join(tmp, 'tok');
    await writeIdefics2Checkpoint({ preset: 'tiny', outDir: dir, seed: 0 });
  });

  it('loads offline in @huggingface/transformers and encodes exactly like Python tokenizers', async () => {
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = path.dirname(dir) + path.sep;
    const tok = await AutoTokenizer.from_pretrained(path.basename(dir));
    const turn = "User:<image>The prompt is 'a cat' Score for this image?<end_of_utterance>\nAssistant: +<end_of_utterance>\n";
    // Reference ids from Python: AutoTokenizer.from_pretrained(dir)(text).input_ids (transformers 5.18,
    // tokenizers 0.23.2) on a tiny checkpoint written by this tool.
    expect(tok.encode(turn)).toEqual([1, 378, 398, 373, 381, 379, 382, 385, 260, 279, 324, 364, 365, 367, 366, 399, 13, 348, 337, 399, 13]);
    expect(tok.encode('héllo wörld 日本')).toEqual([1, 259, 267, 198, 172, 271, 271, 274, 386, 198, 185, 277, 271, 263, 259, 233, 154, 168, 233, 159, 175]);

    // Round trips, including bytes outside the alphabet (byte fallback).
    for (const text of ["The prompt is 'A red fox, 4k!' Score for this image?", 'naïve café – 日本語', 'Assistant: +']) {
      expect(tok.decode(tok.encode(text), { skip_special_tokens: true })).toBe(text);
    }
    // "+" and "-" are single tokens (as the model emits them after "Assistant:").
    const plus = tok.encode('+', { add_special_tokens: false });
    const minus = tok.encode('-', { add_special_tokens: false });
    expect(plus).toHaveLength(1);
    expect(minus).toHaveLength(1);
    expect(tok.encode('Assistant: +', { add_special_tokens: false }).at(-1)).toBe(plus[0]);
    expect(tok.encode('Assistant: -', { add_special_tokens: false }).at(-1)).toBe(minus[0]);
  });
});

describe('cli', () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'tools/scripts/run-ts.js'), path.join(ROOT, 'apps/checkpoint/src/main.ts'), ...args], { cwd: ROOT }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });

  it('writes a checkpoint and rejects bad options with a clear message', async () => {
    const out = path.join(tmp, 'cli');
    const ok = await run(['--preset', 'tiny', '--out', out, '--seed', '2', '--dtype', 'BF16']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('286,240 parameters');
    expect((await readJson(out, 'config.json')).torch_dtype).toBe('bfloat16');
    const bad = await run(['--preset', 'huge', '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--preset must be tiny or small, got 'huge'");
  });
});
