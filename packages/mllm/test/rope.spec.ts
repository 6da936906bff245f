/**
 * RoPE parameters and inverse frequencies: the config keys of transformers 4.x (rope_theta +
 * rope_scaling with `type` or `rope_type`) and 5.x (rope_parameters), and ropeInvFreq against
 * transformers' _compute_llama3_parameters in float32 (goldens/make_idefics3_llama3_rope_goldens.py:
 * the tiny test model's parameters, Llama 3.1's own, two with factors that are not powers of two).
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import { ConfigReader, ropeConfig, ropeTheta, type Json, type RopeConfig } from '../src/config';
import { ropeInvFreq } from '../src/ops';

interface Case {
  head_dim: number;
  rope: { rope_type: string; rope_theta: number; factor?: number; low_freq_factor?: number; high_freq_factor?: number; original_max_position_embeddings?: number };
  bands_high_mid_low: number[] | null;
  inv_freq: number[];
}
const table = JSON.parse(readFileSync(path.join(__dirname, 'fixtures', 'llama3_inv_freq.json'), 'utf8')) as { cases: Case[] };

const reader = () => new ConfigReader('cfg.json', (m) => new Error(m));
const LLAMA31 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };

describe('ropeInvFreq vs transformers (float32)', () => {
  it.each(table.cases.map((c) => [`${c.rope.rope_type} head_dim ${c.head_dim} theta ${c.rope.rope_theta} factor ${c.rope.factor ?? '-'}`, c] as const))('%s', (_name, c) => {
    const rope: RopeConfig = ropeConfig(reader(), { rope_parameters: c.rope }, 'text_config.', { types: ['llama3'] });
    expect(rope.type).toBe(c.rope.rope_type);
    const ours = ropeInvFreq(c.head_dim, rope);
    expect(ours.length).toBe(c.inv_freq.length);
    let maxRel = 0;
    ours.forEach((v, i) => (maxRel = Math.max(maxRel, Math.abs(v - c.inv_freq[i]) / Math.abs(c.inv_freq[i]))));
    // At most one float32 ulp: the llama3 steps match torch bit for bit; torch's float32 pow of the
    // base (default RoPE too) is 1 ulp off the correctly rounded value in one case of 160 (head_dim 96, i 9).
    expect(maxRel).toBeLessThanOrEqual(2 ** -23);
    // Every band occurs in the llama3 cases (so each branch of the formula is checked).
    if (c.bands_high_mid_low) for (const n of c.bands_high_mid_low) expect(n).toBeGreaterThan(0);
  });

  it('a number is the default RoPE base', () => {
    const c = table.cases.find((x) => x.rope.rope_type === 'default')!;
    expect(Array.from(ropeInvFreq(c.head_dim, c.rope.rope_theta))).toEqual(Array.from(ropeInvFreq(c.head_dim, { type: 'default', theta: c.rope.rope_theta })));
  });
});

describe('ropeConfig', () => {
  it("reads transformers 4.x's rope_theta + rope_scaling (rope_type or type) and 5.x's rope_parameters alike", () => {
    const expected = { type: 'llama3', theta: 500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    expect(ropeConfig(reader(), { rope_theta: 500000, rope_scaling: LLAMA31 }, 'text_config.', { types: ['llama3'] })).toEqual(expected);
    const { rope_type, ...rest } = LLAMA31;
    expect(ropeConfig(reader(), { rope_theta: 500000, rope_scaling: { type: rope_type, ...rest } }, 'text_config.', { types: ['llama3'] })).toEqual(expected);
    expect(ropeConfig(reader(), { rope_parameters: { ...LLAMA31, rope_theta: 500000 } }, 'text_config.', { types: ['llama3'] })).toEqual(expected);
    // transformers 5: a non-empty rope_scaling wins over rope_parameters; the dict's rope_theta over the top level.
    expect(ropeConfig(reader(), { rope_theta: 1, rope_parameters: { rope_type: 'default', rope_theta: 500000 }, rope_scaling: { ...LLAMA31, rope_theta: 500000 } }, 'text_config.', { types: ['llama3'] })).toEqual(expected);
    expect(ropeConfig(reader(), { rope_theta: 123 }, 'text_config.')).toEqual({ type: 'default', theta: 123 });
    expect(ropeConfig(reader(), { rope_scaling: null, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }, 'text_config.')).toEqual({ type: 'default', theta: 5e5 });
  });

  it('original_max_position_embeddings defaults as in standardize_rope_params (listed in defaulted)', () => {
    const { original_max_position_embeddings: _, ...noOrig } = LLAMA31;
    const r = reader();
    const rope = ropeConfig(r, { rope_parameters: { ...noOrig, rope_theta: 5e5 } }, 'text_config.', { types: ['llama3'], maxPositionEmbeddings: 131072 });
    expect(rope).toMatchObject({ type: 'llama3', originalMaxPositionEmbeddings: 131072 });
    expect(r.defaulted).toEqual(['text_config.rope_parameters.original_max_position_embeddings']);
    expect(ropeConfig(reader(), { original_max_position_embeddings: 4096, rope_parameters: { ...noOrig, rope_theta: 5e5 } }, 'text_config.', { types: ['llama3'], maxPositionEmbeddings: 131072 })).toMatchObject({ originalMaxPositionEmbeddings: 4096 });
  });

  it('refuses, naming the key: llama3 where the family does not allow it, other scaled types, missing or inconsistent llama3 parameters', () => {
    expect(() => ropeConfig(reader(), { rope_scaling: LLAMA31 }, 'text_config.', { note: ' (x)' })).toThrow(/cfg.json: 'text_config.rope_scaling.rope_type' is "llama3"; only the default \(unscaled\) RoPE is implemented \(x\)/);
    for (const type of ['linear', 'dynamic', 'yarn', 'longrope']) {
      expect(() => ropeConfig(reader(), { rope_scaling: { type, factor: 2 } }, 'text_config.', { types: ['llama3'] })).toThrow(new RegExp(`'text_config.rope_scaling.type' is "${type}"; the RoPE types implemented are "default", "llama3"`));
      expect(() => ropeConfig(reader(), { rope_parameters: { rope_type: type, rope_theta: 1e4, factor: 2 } }, 'text_config.', { types: ['llama3'] })).toThrow(new RegExp(`'text_config.rope_parameters.rope_type' is "${type}"`));
    }
    const { factor: _, ...noFactor } = LLAMA31;
    expect(() => ropeConfig(reader(), { rope_scaling: noFactor }, 'text_config.', { types: ['llama3'] })).toThrow(/'text_config.rope_scaling.factor' is missing/);
    expect(() => ropeConfig(reader(), { rope_scaling: { ...LLAMA31, high_freq_factor: 1 } }, 'text_config.', { types: ['llama3'] })).toThrow(/'text_config.rope_scaling.high_freq_factor' 1 must be greater than/);
    expect(() => ropeConfig(reader(), { rope_scaling: { ...LLAMA31, partial_rotary_factor: 0.5 } }, 'text_config.', { types: ['llama3'] })).toThrow(/'text_config.rope_scaling.partial_rotary_factor' is 0.5/);
  });

  it('ropeTheta keeps its meaning: the base, unscaled RoPE only', () => {
    const t: Json = { rope_parameters: { rope_type: 'default', rope_theta: 5e5 } };
    expect(ropeTheta(reader(), t, 'text_config.')).toBe(5e5);
    expect(() => ropeTheta(reader(), { rope_scaling: LLAMA31 }, 'text_config.')).toThrow(/'text_config.rope_scaling.rope_type' is "llama3"/);
  });
});
