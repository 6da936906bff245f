/**
 * The quantizers against an independent numpy implementation written from the papers
 * (goldens/make_quant_goldens.py -> test/goldens/quant_goldens.json), bit for bit: codes,
 * scales / absmaxes, packed words, dequantized values; and the device unpack (tfjs ops) on the
 * wasm, tensorflow (tfjs-node) and plain cpu backends equal to the host values bit for bit.
 */
import { readFileSync } from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initRuntime } from '@userpref/runtime';
import { NF4_LEVELS, PackedMatrix, codesPerWord, doubleDequantize, doubleQuantize, dequantizeInt8, dequantizeNf4, packCodes, packedBytes, quantizeInt8, quantizeNf4, unpackCodes, unpackCodesHost } from '../src';

interface Case {
  name: string;
  shape: [number, number];
  w: string[];
  int8: { codes: number[]; scales: string[]; dequant: string[]; words: number[] };
  nf4: { codes: number[]; absmax: string[]; dequant: string[]; words: number[] };
  nf4_double: { codes: number[]; mean: string; scales: string[]; absmax: string[]; dequant: string[] };
}
interface Goldens {
  nf4_levels: string[];
  cases: Case[];
}

const goldens: Goldens = JSON.parse(readFileSync(path.join(__dirname, 'goldens', 'quant_goldens.json'), 'utf8'));

/** float32 values from hex bit patterns. */
function fromBits(hex: readonly string[]): Float32Array {
  return new Float32Array(Uint32Array.from(hex, (h) => parseInt(h, 16)).buffer);
}

/** Bit patterns of float32 values (compares -0 / +0 and NaN payloads too). */
function bitsOf(a: Float32Array | ArrayLike<number>): number[] {
  return Array.from(new Uint32Array(Float32Array.from(a as ArrayLike<number>).buffer));
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

describe('host quantizers = numpy goldens (bit-exact)', () => {
  it('has the QLoRA NF4 levels', () => {
    expect(bitsOf(NF4_LEVELS)).toEqual(bitsOf(fromBits(goldens.nf4_levels)));
  });

  it('covers the edge cases it claims (midpoint ties, zero rows and blocks, ragged tails)', () => {
    expect(goldens.cases.map((c) => c.name)).toEqual(['gaussian_24x64', 'mixed_8x128', 'edges_3x64', 'cross_rows_10x40', 'ragged_7x13']);
    const edges = goldens.cases[2];
    // Codes of exact midpoints go down: both neighbours appear.
    expect(new Set(edges.nf4.codes).size).toBe(16);
  });

  for (const c of goldens.cases) {
    describe(c.name, () => {
      const [out, inF] = c.shape;
      const w = fromBits(c.w);

      it('int8 absmax per output channel: codes, scales, dequantized values, words', () => {
        const q = quantizeInt8(w, out, inF);
        expect(Array.from(q.codes)).toEqual(c.int8.codes);
        expect(bitsOf(q.scales)).toEqual(bitsOf(fromBits(c.int8.scales)));
        expect(bitsOf(dequantizeInt8(q, out, inF))).toEqual(bitsOf(fromBits(c.int8.dequant)));
        expect(Array.from(packCodes(q.codes, 8))).toEqual(c.int8.words);
      });

      it('NF4 blockwise 64: codes, absmax, dequantized values, words', () => {
        const q = quantizeNf4(w, 64);
        expect(Array.from(q.codes)).toEqual(c.nf4.codes);
        expect(bitsOf(q.absmax)).toEqual(bitsOf(fromBits(c.nf4.absmax)));
        expect(bitsOf(dequantizeNf4(q))).toEqual(bitsOf(fromBits(c.nf4.dequant)));
        expect(Array.from(packCodes(q.codes, 4))).toEqual(c.nf4.words);
      });

      it('NF4 with double-quantized absmax', () => {
        const q = quantizeNf4(w, 64);
        const d = doubleQuantize(q.absmax);
        expect(Array.from(d.codes)).toEqual(c.nf4_double.codes);
        expect(bitsOf([d.mean])).toEqual(bitsOf(fromBits([c.nf4_double.mean])));
        expect(bitsOf(d.scales)).toEqual(bitsOf(fromBits(c.nf4_double.scales)));
        const absmax = doubleDequantize(d);
        expect(bitsOf(absmax)).toEqual(bitsOf(fromBits(c.nf4_double.absmax)));
        expect(bitsOf(dequantizeNf4(q, absmax))).toEqual(bitsOf(fromBits(c.nf4_double.dequant)));
      });
    });
  }
});

describe('packing', () => {
  it('round-trips codes at the extremes of 8 and 4 bits, any count', () => {
    for (const bits of [8, 4] as const) {
      const max = (1 << bits) - 1;
      for (const n of [1, 5, 6, 7, 64, 100]) {
        const codes = Uint8Array.from({ length: n }, (_, i) => (i % 3 === 0 ? max : (i * 37) % (max + 1)));
        const words = packCodes(codes, bits);
        expect(words.length).toBe(Math.ceil(n / codesPerWord(bits)));
        for (const w of words) expect(w).toBeLessThan(2 ** 24);
        expect(Array.from(unpackCodesHost(words, bits, n))).toEqual(Array.from(codes));
      }
    }
  });

  it('refuses a code that does not fit', () => {
    expect(() => packCodes([16], 4)).toThrow('does not fit 4 bits');
    expect(() => packCodes([256], 8)).toThrow('does not fit 8 bits');
  });
});

/** tfjs-node is an optional dependency: its backend is tested where its binding loads. */
function tensorflowLoads(): boolean {
  try {
    require('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}

for (const backend of ['wasm', 'tensorflow', 'cpu'] as const) {
  (backend !== 'tensorflow' || tensorflowLoads() ? describe : describe.skip)(`device unpack on ${backend} (tfjs ops) = host values, bit-exact`, () => {
    beforeAll(async () => {
      await initRuntime({ device: 'cpu', prefer: backend });
      expect(tf.getBackend()).toBe(backend);
    });

    it('unpackCodes gives every code back (all values of 8 and 4 bits)', () => {
      for (const bits of [8, 4] as const) {
        const n = 3 * 257 + 1;
        const codes = Uint8Array.from({ length: n }, (_, i) => (i * 101) % (1 << bits));
        const words = tf.tensor1d(packCodes(codes, bits));
        const before = tf.memory().numTensors;
        const t = unpackCodes(words, bits, n);
        expect(tf.memory().numTensors).toBe(before + 1);
        expect(Array.from(t.dataSync())).toEqual(Array.from(codes));
        t.dispose();
        words.dispose();
      }
    });

    for (const c of goldens.cases) {
      it(`${c.name}: materialize() [in, out] = numpy's dequantized weight transposed`, () => {
        const [out, inF] = c.shape;
        const w = fromBits(c.w);
        const variants: Array<[string, PackedMatrix, string[]]> = [
          ['int8', PackedMatrix.quantize(w, out, inF, { bits: 8 }), c.int8.dequant],
          ['nf4', PackedMatrix.quantize(w, out, inF, { bits: 4 }), c.nf4.dequant],
          ['nf4+dq', PackedMatrix.quantize(w, out, inF, { bits: 4, doubleQuant: true }), c.nf4_double.dequant],
        ];
        for (const [name, p, expected] of variants) {
          const want = bitsOf(transpose(fromBits(expected), out, inF));
          const before = tf.memory().numTensors;
          const m = p.materialize();
          expect(tf.memory().numTensors).toBe(before + 1);
          expect([name, m.shape]).toEqual([name, [inF, out]]);
          expect([name, bitsOf(m.dataSync() as Float32Array)]).toEqual([name, want]);
          expect([name, bitsOf(p.dequantizeHost())]).toEqual([name, want]);
          m.dispose();
          p.dispose();
        }
      });
    }

    it('holds 8-bit codes in 1.33 bytes and 4-bit codes in 0.67 bytes a weight (+ scales)', () => {
      const inF = 256;
      const out = 96;
      const w = Float32Array.from({ length: inF * out }, (_, i) => Math.sin(i));
      const n = inF * out;
      const p8 = PackedMatrix.quantize(w, out, inF, { bits: 8 });
      const p4 = PackedMatrix.quantize(w, out, inF, { bits: 4 });
      const p4d = PackedMatrix.quantize(w, out, inF, { bits: 4, doubleQuant: true });
      expect(p8.bytes).toBe(4 * (n / 3 + out));
      expect(p4.bytes).toBe(4 * (n / 6 + n / 64));
      expect(p8.bytes).toBe(packedBytes(inF, out, { bits: 8 }));
      expect(p4.bytes).toBe(packedBytes(inF, out, { bits: 4 }));
      expect(p4d.bytes).toBe(packedBytes(inF, out, { bits: 4, doubleQuant: true }));
      expect(p4d.bytes).toBeLessThan(p4.bytes);
      for (const p of [p8, p4, p4d]) p.dispose();
    });
  });
}
