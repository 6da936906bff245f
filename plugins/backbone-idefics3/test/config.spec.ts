/**
 * config.json reading (the meaning transformers gives the file, refusals naming the key) and the
 * plugin's options schema.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import { validateOptions } from '@userpref/core';
import { IDEFICS3_TARGET_MODULES, parseIdefics3Config, userprefPlugin } from '../src';
import { targetMatcher } from '@userpref/mllm';
import { checkpointDir } from './fixtures';

async function fixtureConfig(): Promise<Record<string, any>> {
  return JSON.parse(await fs.readFile(path.join(checkpointDir('smolvlm-tiny'), 'config.json'), 'utf8'));
}

describe('parseIdefics3Config', () => {
  it('reads the SmolVLM-shaped fixture: Llama sizes, rope_parameters, tied head, tokens per tile', async () => {
    const c = parseIdefics3Config(await fixtureConfig());
    expect(c.modelType).toBe('idefics3');
    expect(c.text).toMatchObject({ hiddenSize: 48, numHeads: 3, numKvHeads: 1, headDim: 16, ropeTheta: 100000, slidingWindow: null });
    expect(c.tieWordEmbeddings).toBe(true);
    // (32 / 2)^2 patches / 4^2 = 16 tokens a tile.
    expect(c.imageSeqLen).toBe(16);
  });

  it('fills what the file omits with the transformers defaults and says so', async () => {
    const json = await fixtureConfig();
    delete json.text_config.num_key_value_heads;
    delete json.text_config.rope_parameters;
    delete json.scale_factor;
    const c = parseIdefics3Config(json);
    expect(c.text.numKvHeads).toBe(c.text.numHeads);
    expect(c.text.ropeTheta).toBe(10000);
    expect(c.scaleFactor).toBe(2);
    expect(c.defaulted).toEqual(expect.arrayContaining(['text_config.num_key_value_heads', 'text_config.rope_theta', 'scale_factor']));
  });

  it("reads transformers 4's rope_theta + rope_scaling: Llama 3.1's llama3 scaling (Idefics3-8B-Llama3's), other scaled RoPE refused naming the key", async () => {
    const json = await fixtureConfig();
    delete json.text_config.rope_parameters;
    json.text_config.rope_theta = 500000;
    expect(parseIdefics3Config(json).text.ropeTheta).toBe(500000);
    expect(parseIdefics3Config(json).text.rope).toEqual({ type: 'default', theta: 500000 });
    json.text_config.max_position_embeddings = 131072;
    json.text_config.rope_scaling = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
    const c = parseIdefics3Config(json, 'cfg.json');
    expect(c.text.rope).toEqual({ type: 'llama3', theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(c.text.ropeTheta).toBe(500000);
    json.text_config.rope_scaling = { type: 'linear', factor: 8 };
    expect(() => parseIdefics3Config(json, 'cfg.json')).toThrow(/cfg.json: 'text_config.rope_scaling.type' is "linear"; the RoPE types implemented are "default", "llama3"/);
    json.text_config.rope_scaling = { rope_type: 'yarn', factor: 8 };
    expect(() => parseIdefics3Config(json, 'cfg.json')).toThrow(/cfg.json: 'text_config.rope_scaling.rope_type' is "yarn"/);
  });

  it("reads Llama's attention_bias and mlp_bias (transformers' default: false)", async () => {
    const json = await fixtureConfig();
    delete json.text_config.attention_bias;
    delete json.text_config.mlp_bias;
    expect(parseIdefics3Config(json).text).toEqual(expect.objectContaining({ attentionBias: false, mlpBias: false }));
    json.text_config.attention_bias = true;
    json.text_config.mlp_bias = true;
    expect(parseIdefics3Config(json).text).toEqual(expect.objectContaining({ attentionBias: true, mlpBias: true }));
  });

  it('refuses other architectures and sizes that cannot be computed', async () => {
    const other = { ...(await fixtureConfig()), model_type: 'idefics2' };
    expect(() => parseIdefics3Config(other)).toThrow(/'model_type' is "idefics2"/);
    const bias = await fixtureConfig();
    bias.text_config.attention_bias = 'yes';
    expect(() => parseIdefics3Config(bias)).toThrow(/'text_config.attention_bias'/);
    const shuffle = await fixtureConfig();
    shuffle.scale_factor = 3;
    expect(() => parseIdefics3Config(shuffle)).toThrow(/scale_factor' 3 does not divide the 16 patches per side/);
  });
});

describe('the idefics3 contribution', () => {
  it('fills the schema defaults and needs a path', () => {
    const c = userprefPlugin.contributions.find((x) => x.name === 'idefics3')!;
    expect(c.kind).toBe('backbone');
    const opts = validateOptions('backbone idefics3', c.optionsSchema, { path: 'ckpt' });
    expect(opts).toMatchObject({ path: 'ckpt', usePrompt: true, maxPromptLen: 100, imageSplitting: null, sharedPrefix: true, lora: { r: 8, alpha: 8, dropout: 0.1, init: 'gaussian', targetModules: IDEFICS3_TARGET_MODULES } });
    expect(() => validateOptions('backbone idefics3', c.optionsSchema, {})).toThrow(/path/);
    expect(() => validateOptions('backbone idefics3', c.optionsSchema, { path: 'x', imageSplit: false })).toThrow(/imageSplit/);
  });

  it("the default LoRA targets are the text model's projections and the modality projection, not the vision tower", () => {
    const match = targetMatcher(IDEFICS3_TARGET_MODULES);
    expect(match('model.text_model.layers.3.self_attn.q_proj')).toBe(true);
    expect(match('model.text_model.layers.3.mlp.down_proj')).toBe(true);
    expect(match('model.connector.modality_projection.proj')).toBe(true);
    expect(match('model.vision_model.encoder.layers.0.self_attn.q_proj')).toBe(false);
    expect(match('lm_head')).toBe(false);
  });
});
