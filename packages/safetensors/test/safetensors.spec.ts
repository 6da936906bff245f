import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CheckpointReader, SafetensorsFile, floatToBf16, floatToHalf, halfToFloat, bf16ToFloat, writeSafetensors, writeShardedCheckpoint } from '../src';

const fixtures = path.join(__dirname, 'fixtures');

describe('safetensors', () => {
  let tmp: string;
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'st-'));
  });
  afterEach(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('reads a file written by the reference safetensors package (F32, F16, BF16, scalar)', async () => {
    const expected = JSON.parse(await fs.readFile(path.join(fixtures, 'reference.json'), 'utf8')) as Record<string, { dtype: string; shape: number[]; values: number[] }>;
    const f = await SafetensorsFile.open(path.join(fixtures, 'reference.safetensors'));
    expect(f.metadata()).toEqual({ format: 'pt', note: 'made by safetensors.torch' });
    expect(f.names().sort()).toEqual(Object.keys(expected).sort());
    for (const [name, e] of Object.entries(expected)) {
      expect(f.entry(name).dtype).toBe(e.dtype);
      expect(f.entry(name).shape).toEqual(e.shape);
      const got = await f.readFloat32(name);
      // torch's float() of each stored value is exact in float32.
      expect(Array.from(got)).toEqual(e.values.map((v) => Math.fround(v)));
    }
    await f.close();
  });

  it('encodes half and bfloat16 with round-to-nearest-even like torch', () => {
    // Hand values: 1 + 2^-11 is exactly halfway between half(1) and the next half; ties go to even (1.0).
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00);
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(halfToFloat(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(bf16ToFloat(0x4049)).toBe(3.140625);
  });

  it('round-trips what it writes, in every float dtype', async () => {
    const data = Float32Array.from([0.5, -1.25, 3, 1024.5, -0.001]);
    const file = path.join(tmp, 'a.safetensors');
    await writeSafetensors(file, [
      { name: 'f32', dtype: 'F32', shape: [5], data },
      { name: 'f16', dtype: 'F16', shape: [5, 1], data },
      { name: 'bf16', dtype: 'BF16', shape: [1, 5], data },
    ], { hello: 'world' });
    const f = await SafetensorsFile.open(file);
    expect(Array.from(await f.readFloat32('f32'))).toEqual(Array.from(data));
    const f16 = await f.readFloat32('f16');
    // half keeps 11 significant bits: relative error at most 2^-11.
    data.forEach((v, i) => expect(Math.abs(f16[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11));
    expect(f.entry('bf16').shape).toEqual([1, 5]);
    expect(f.metadata()).toEqual({ hello: 'world' });
    // Data is 8-byte aligned after the header, as the reference writer does.
    const raw = await fs.readFile(file);
    expect(Number(raw.readBigUInt64LE(0)) % 8).toBe(0);
    await f.close();
  });

  it('writes shards with an index and reads them back tensor by tensor', async () => {
    const tensors = [0, 1, 2, 3].map((i) => ({ name: `layer.${i}.weight`, dtype: 'F32' as const, shape: [16], data: new Float32Array(16).fill(i) }));
    const files = await writeShardedCheckpoint(tmp, tensors, { maxShardBytes: 130 });
    expect(files.map((f) => path.basename(f))).toEqual([
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await fs.readFile(path.join(tmp, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata.total_size).toBe(4 * 64);
    const ckpt = await CheckpointReader.open(tmp);
    expect(ckpt.names().sort()).toEqual(tensors.map((t) => t.name));
    expect(Array.from(await ckpt.readFloat32('layer.3.weight'))).toEqual(new Array(16).fill(3));
    await expect(ckpt.readFloat32('nope')).rejects.toThrow(/has no tensor named 'nope'/);
    await ckpt.close();
  });

  it('names the problem in a truncated or corrupt file', async () => {
    const file = path.join(tmp, 'a.safetensors');
    await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [64], data: new Float32Array(64) }]);
    const raw = await fs.readFile(file);
    await fs.writeFile(path.join(tmp, 'trunc.safetensors'), raw.subarray(0, raw.length - 10));
    await expect(SafetensorsFile.open(path.join(tmp, 'trunc.safetensors'))).rejects.toThrow(/tensor 'w' extends past the end of the file/);
    await fs.writeFile(path.join(tmp, 'tiny.safetensors'), Buffer.from([1, 2]));
    await expect(SafetensorsFile.open(path.join(tmp, 'tiny.safetensors'))).rejects.toThrow(/too short/);
    await expect(CheckpointReader.open(path.join(tmp, 'missing'))).rejects.toThrow(/checkpoint not found/);
    await expect(CheckpointReader.open(tmp, 'adapter_model.safetensors')).rejects.toThrow(/neither adapter_model.safetensors/);
  });
});
