"""Goldens of @userpref/quant, written in numpy straight from the papers (no bitsandbytes, no code
shared with the TypeScript library), so packages/quant/test checks its quantizers bit for bit
against an independent implementation.

    python goldens/make_quant_goldens.py --out packages/quant/test/goldens

Quantizers (float32 arithmetic throughout, as numpy does it on float32 arrays):

* absmax int8 per output channel (LLM.int8(), Dettmers et al. 2022, "vector-wise" quantization of
  the weight rows): for a weight W [out, in] (the Hugging Face layout), scale_o = absmax_o / 127,
  q = rint(W / scale_o) (round half to even) clipped to [-127, 127]; dequantized W' = q * scale_o.
  An all-zero row has scale 0 and codes 0.
* NF4 (QLoRA, Dettmers et al. 2023, section 3 and appendix E): the flattened weight is cut into
  blocks of 64 consecutive values; c = absmax of the block; each value is normalised as
  x * float32(1 / c) (the reciprocal once per block) and mapped to the nearest of the 16 NF4 levels,
  a value exactly halfway between two levels going to the lower one (the decision is
  "normalised > midpoint", midpoints float32((level_i + level_i+1) / 2)); dequantized
  W' = level[code] * c. An all-zero block has absmax 0 and every code is the level 0.0 (code 7).
  The 16 levels are rebuilt here from the paper's construction (quantiles of N(0, 1): 8 positive
  from linspace(0.9677083, 0.5, 9)[:-1], 7 negative from linspace(0.9677083, 0.5, 8)[:-1], plus 0,
  normalised by the largest; probabilities a float32 linspace, quantiles torch.special.ndtri in
  float64, levels float32) and checked to be exactly the values the QLoRA appendix lists.
* Double quantization (QLoRA section 3, optional): the float32 block absmaxes are quantized again
  in blocks of 256 after subtracting their mean, with int8 absmax (scale = absmax / 127, rint);
  the paper uses 8-bit floats there, this variant uses int8 (say so in the report).

Packing: codes (8-bit: q + 128 in [1, 255]; 4-bit: NF4 index in [0, 15]) are packed K to a
float32 word as the exact integer sum_k code[jK + k] * 2^(bits k), K = 3 (8 bits) or 6 (4 bits),
the last word zero padded: every word is an integer below 2^24, exact in float32.

Output: quant_goldens.json with, per case, the input (float32 values as uint32 bit patterns in
hex, so nothing is lost in JSON), the codes, the scales / absmaxes (bit patterns), the packed
words and the dequantized values (bit patterns).
"""
import argparse
import json
import os

import numpy as np
import torch

# The NF4 levels as listed in the QLoRA paper's appendix E.
NF4_LISTED = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
]


def nf4_levels():
    offset = 0.9677083
    # The probabilities are a float32 linspace, the quantiles float64, the levels float32 divided by
    # the largest in float32 (the appendix's values are exactly these).
    ndtri = lambda p: torch.special.ndtri(torch.tensor(p, dtype=torch.float32).double()).numpy()
    pos = ndtri(torch.linspace(offset, 0.5, 9)[:-1].numpy())
    neg = -ndtri(torch.linspace(offset, 0.5, 8)[:-1].numpy())
    v = np.sort(np.concatenate([pos, [0.0], neg]).astype(np.float32))
    levels = (v / v.max()).astype(np.float32)
    listed = np.array(NF4_LISTED, dtype=np.float32)
    assert np.array_equal(levels, listed), (levels, listed)
    return levels


def bits(a):
    return [format(int(x), '08x') for x in np.asarray(a, dtype=np.float32).view(np.uint32).ravel()]


def int8_absmax(w):
    w = np.asarray(w, dtype=np.float32)
    absmax = np.abs(w).max(axis=1).astype(np.float32)
    scale = (absmax / np.float32(127)).astype(np.float32)
    safe = np.where(scale == 0, np.float32(1), scale).astype(np.float32)
    q = np.rint(w / safe[:, None]).astype(np.float32)
    q = np.clip(q, -127, 127)
    q[scale == 0] = 0
    codes = q.astype(np.int32) + 128
    # Dequantized from the stored codes (an integer code has no -0).
    deq = ((codes - 128).astype(np.float32) * scale[:, None]).astype(np.float32)
    return codes.ravel(), scale, deq


def nf4(w, levels, block=64):
    flat = np.asarray(w, dtype=np.float32).ravel()
    n = flat.size
    nb = -(-n // block)
    mids = ((levels[:-1].astype(np.float64) + levels[1:].astype(np.float64)) / 2).astype(np.float32)
    codes = np.zeros(n, dtype=np.int32)
    absmax = np.zeros(nb, dtype=np.float32)
    deq = np.zeros(n, dtype=np.float32)
    for b in range(nb):
        x = flat[b * block:(b + 1) * block]
        c = np.float32(np.abs(x).max())
        absmax[b] = c
        if c == 0:
            codes[b * block:(b + 1) * block] = 7
        else:
            inv = np.float32(np.float32(1) / c)
            normed = (x * inv).astype(np.float32)
            # code = number of midpoints strictly below the normalised value
            codes[b * block:(b + 1) * block] = (normed[:, None] > mids[None, :]).sum(axis=1)
        deq[b * block:(b + 1) * block] = (levels[codes[b * block:(b + 1) * block]] * c).astype(np.float32)
    return codes, absmax, deq


def double_quant(absmax, block=256):
    absmax = np.asarray(absmax, dtype=np.float32)
    mean = np.float32(absmax.astype(np.float32).mean(dtype=np.float64))
    centred = (absmax - mean).astype(np.float32)
    n = centred.size
    nb = -(-n // block)
    codes = np.zeros(n, dtype=np.int32)
    scales = np.zeros(nb, dtype=np.float32)
    deq = np.zeros(n, dtype=np.float32)
    for b in range(nb):
        x = centred[b * block:(b + 1) * block]
        c = np.float32(np.abs(x).max())
        s = np.float32(c / np.float32(127))
        scales[b] = s
        q = np.zeros_like(x) if s == 0 else np.clip(np.rint(x / s), -127, 127)
        codes[b * block:(b + 1) * block] = q.astype(np.int32) + 128
        deq[b * block:(b + 1) * block] = (q.astype(np.float32) * s + mean).astype(np.float32)
    return codes, mean, scales, deq


def pack(codes, nbits):
    k = 24 // nbits
    c = np.asarray(codes, dtype=np.int64)
    pad = (-c.size) % k
    c = np.concatenate([c, np.zeros(pad, dtype=np.int64)]).reshape(-1, k)
    words = (c * (1 << (nbits * np.arange(k, dtype=np.int64)))).sum(axis=1)
    assert words.max(initial=0) < (1 << 24)
    out = words.astype(np.float32)
    assert np.array_equal(out.astype(np.int64), words)
    return out


def cases():
    rng = np.random.default_rng(20250810)
    out = []
    # Gaussian weights like a trained linear layer, in Hugging Face layout [out, in].
    out.append(('gaussian_24x64', (rng.standard_normal((24, 64)) * 0.02).astype(np.float32)))
    # Rows of different magnitudes, an all-zero row / block, a row with one outlier.
    w = (rng.standard_normal((8, 128)) * 0.05).astype(np.float32)
    w[2] = 0
    w[5, 17] = 3.5
    w[6] *= 1e-6
    out.append(('mixed_8x128', w))
    # Values placed exactly on the NF4 midpoints and levels (times a power of two absmax), and the
    # int8 half-way cases k + 0.5 of the scale.
    levels = nf4_levels()
    mids = ((levels[:-1].astype(np.float64) + levels[1:].astype(np.float64)) / 2).astype(np.float32)
    edge = np.concatenate([levels, mids, -mids, np.float32([0.5, -0.5, 0.25])]).astype(np.float32)
    edge = np.resize(edge, 64).astype(np.float32)
    edge[0] = 1.0
    e = np.stack([edge * np.float32(2.0), edge * np.float32(0.125)]).astype(np.float32)
    half = np.float32(1.0) / np.float32(127) * (np.arange(64, dtype=np.float32) % 127 + np.float32(0.5))
    half[0] = 1.0
    out.append(('edges_3x64', np.concatenate([e, half[None, :].astype(np.float32)]).astype(np.float32)))
    # A shape whose blocks cross rows (in = 40: 64-blocks span rows, as the tiny preset's vision).
    out.append(('cross_rows_10x40', (rng.standard_normal((10, 40)) * 0.1).astype(np.float32)))
    # Length not a multiple of the block or of the word.
    out.append(('ragged_7x13', (rng.standard_normal((7, 13))).astype(np.float32)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    args = ap.parse_args()
    levels = nf4_levels()
    result = {'nf4_levels': bits(levels), 'cases': []}
    for name, w in cases():
        q8, s8, d8 = int8_absmax(w)
        q4, a4, d4 = nf4(w, levels)
        dq_codes, dq_mean, dq_scales, dq_absmax = double_quant(a4)
        d4dq = (levels[q4] * np.repeat(dq_absmax, 64)[: q4.size]).astype(np.float32)
        result['cases'].append({
            'name': name,
            'shape': list(w.shape),
            'w': bits(w),
            'int8': {'codes': q8.tolist(), 'scales': bits(s8), 'dequant': bits(d8), 'words': pack(q8, 8).astype(np.int64).tolist()},
            'nf4': {'codes': q4.tolist(), 'absmax': bits(a4), 'dequant': bits(d4), 'words': pack(q4, 4).astype(np.int64).tolist()},
            'nf4_double': {'codes': dq_codes.tolist(), 'mean': bits([dq_mean])[0], 'scales': bits(dq_scales), 'absmax': bits(dq_absmax), 'dequant': bits(d4dq)},
        })
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'quant_goldens.json')
    with open(path, 'w') as f:
        json.dump(result, f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {path} ({os.path.getsize(path)} bytes, {len(result["cases"])} cases)')


if __name__ == '__main__':
    main()
