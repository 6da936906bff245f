/** float16 / bfloat16 -> float32 widening (exact: every half and bfloat16 value is a float32). */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export function bfloat16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** Widen little-endian 16-bit floats stored in `raw` (even length) to a new Float32Array. */
export function widen16(raw: Uint8Array, kind: 'float16' | 'bfloat16'): Float32Array {
  const n = raw.length >> 1;
  const out = new Float32Array(n);
  if (kind === 'bfloat16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = (raw[2 * i] | (raw[2 * i + 1] << 8)) << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = halfToFloat(raw[2 * i] | (raw[2 * i + 1] << 8));
  }
  return out;
}
