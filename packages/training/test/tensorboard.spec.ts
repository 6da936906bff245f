import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initRuntime } from '@userpref/runtime';
import { memoryLogger } from '@userpref/core';
import {
  TensorBoardWriter, TensorBoardMetrics, Trainer, decodeEventRecords, encodeEvent, frameRecord, maskedCrc32c, metricsScalars, readEventFile,
  type TensorBoardEvent, type TrainOptions,
} from '../src';
import { ToyBackbone, ceLoss, toyDataset } from './toy';

const FIXTURES = path.join(__dirname, 'fixtures', 'tensorboard');
type Golden = {
  headerWallTime: number;
  purgeStep: number;
  scalars: Array<{ tag: string; value: number | string; step: number; wallTime: number }>;
  purgeScalars: Array<{ tag: string; value: number | string; step: number; wallTime: number }>;
  readBack: Array<{ tag: string; value: number | string; step: number; wallTime: number }>;
  purgeEvents: Array<{ step: number; wallTime: number; kind: string; sessionLog?: number }>;
};
const num = (v: number | string) => (typeof v === 'number' ? v : Number(v)); // "NaN", "Infinity", "-Infinity"
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** Bit-at-a-time CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): independent of the table-driven library. */
function bitwiseCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of data) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
const mask = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'tb-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('TensorBoardWriter against tensorboardX (fixtures from goldens/make_tensorboard_fixtures.py)', () => {
  let golden: Golden;
  beforeAll(async () => {
    golden = JSON.parse(await fs.readFile(path.join(FIXTURES, 'tensorboard.json'), 'utf8'));
  });

  it('writes the same bytes as SummaryWriter.add_scalar, header included', async () => {
    const w = await TensorBoardWriter.open(tmp, { wallTime: golden.headerWallTime, hostname: 'golden' });
    expect(path.basename(w.file)).toBe('events.out.tfevents.1700000000.golden');
    for (const s of golden.scalars) w.scalar(s.tag, num(s.value), s.step, s.wallTime);
    await w.close();
    const ours = await fs.readFile(w.file);
    const theirs = await fs.readFile(path.join(FIXTURES, 'scalars.tfevents'));
    expect(ours.length).toBe(theirs.length);
    expect(hex(ours)).toBe(hex(theirs));
  });

  it('writes the same bytes as SummaryWriter(purge_step=...) for a resumed run', async () => {
    const w = await TensorBoardWriter.open(tmp, { wallTime: golden.headerWallTime, hostname: 'golden', purgeStep: golden.purgeStep });
    for (const s of golden.purgeScalars) w.scalar(s.tag, num(s.value), s.step, s.wallTime);
    await w.close();
    expect(hex(await fs.readFile(w.file))).toBe(hex(await fs.readFile(path.join(FIXTURES, 'purge.tfevents'))));
  });

  it('reads the tensorboardX file as tensorboard\'s EventAccumulator does', async () => {
    const events = await readEventFile(path.join(FIXTURES, 'scalars.tfevents'));
    expect(events[0]).toEqual({ wallTime: golden.headerWallTime, step: 0, fileVersion: 'brain.Event:2' });
    const scalars = events.slice(1).flatMap((e) => e.scalars!.map((s) => ({ tag: s.tag, step: e.step, wallTime: e.wallTime, value: s.value })));
    // EventAccumulator groups by tag; compare as sets of (tag, step).
    const key = (s: { tag: string; step: number }) => `${s.tag}@${s.step}`;
    expect(scalars.map(key).sort()).toEqual(golden.readBack.map(key).sort());
    const byKey = new Map(scalars.map((s) => [key(s), s]));
    for (const r of golden.readBack) {
      const s = byKey.get(key(r))!;
      expect(s.wallTime).toBe(r.wallTime);
      expect(Object.is(s.value, num(r.value)) || (Number.isNaN(s.value) && Number.isNaN(num(r.value)))).toBe(true);
    }
  });

  it('reads the purge header as written by tensorboardX', async () => {
    const events = await readEventFile(path.join(FIXTURES, 'purge.tfevents'));
    const kind = (e: TensorBoardEvent) => (e.fileVersion ? 'file_version' : e.sessionLog ? 'session_log' : 'summary');
    expect(events.map((e) => ({ step: e.step, wallTime: e.wallTime, kind: kind(e) }))).toEqual(golden.purgeEvents.map(({ step, wallTime, kind }) => ({ step, wallTime, kind })));
    expect(events[2].sessionLog).toBe('START');
    expect(golden.purgeEvents[2].sessionLog).toBe(1);
  });
});

describe('event encoding by hand', () => {
  it('uses CRC-32C with TFRecord masking', () => {
    const check = new TextEncoder().encode('123456789');
    expect(bitwiseCrc32c(check)).toBe(0xe3069283); // the CRC-32C catalogue check value
    expect(maskedCrc32c(check)).toBe(mask(0xe3069283));
    expect(maskedCrc32c(check)).toBe(0xc78ab0e5);
    // RFC 3720 B.4 vectors, masked
    const asc = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(maskedCrc32c(new Uint8Array(32))).toBe(mask(0x8a9136aa));
    expect(maskedCrc32c(new Uint8Array(32).fill(0xff))).toBe(mask(0x62a8ab43));
    expect(maskedCrc32c(asc)).toBe(mask(0x46dd794e));
    expect(maskedCrc32c(asc.slice().reverse())).toBe(mask(0x113fdb5c));
  });

  it('frames a record as length, masked CRC of the length, payload, masked CRC of the payload', () => {
    const payload = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    const r = frameRecord(payload);
    expect(r.length).toBe(8 + 4 + 300 + 4);
    expect(hex(r.subarray(0, 8))).toBe('2c01000000000000'); // 300 little-endian
    const u32 = (o: number) => new DataView(r.buffer, r.byteOffset).getUint32(o, true);
    expect(u32(8)).toBe(mask(bitwiseCrc32c(r.subarray(0, 8))));
    expect(hex(r.subarray(12, 312))).toBe(hex(payload));
    expect(u32(312)).toBe(mask(bitwiseCrc32c(payload)));
    const empty = frameRecord(new Uint8Array(0));
    expect(empty.length).toBe(16);
    expect(hex(empty.subarray(0, 8))).toBe('0000000000000000');
    expect(new DataView(empty.buffer).getUint32(8, true)).toBe(mask(bitwiseCrc32c(new Uint8Array(8))));
    expect(new DataView(empty.buffer).getUint32(12, true)).toBe(mask(0)); // CRC of nothing is 0
  });

  it('encodes a scalar event field by field', () => {
    // wall_time 1.5 = 0x3FF8000000000000 (fixed64, tag 0x09); step 1 (varint, tag 0x10);
    // summary (len, tag 0x2a) { value (len, tag 0x0a) { tag "a" (0x0a 01 61), simple_value 1.0f (0x15 0000803f) } }
    expect(hex(encodeEvent({ wallTime: 1.5, step: 1, scalars: [{ tag: 'a', value: 1 }] }))).toBe('09000000000000f83f' + '1001' + '2a0a' + '0a08' + '0a0161' + '150000803f');
  });

  it.each([
    [1, '1001'],
    [127, '107f'],
    [128, '108001'],
    [300, '10ac02'],
    [2 ** 31, '108080808008'],
    [2 ** 53 - 1, '10' + 'ff'.repeat(7) + '0f'],
    [-1, '10' + 'ff'.repeat(9) + '01'],
    [-(2 ** 53 - 1), '10' + '81' + '80'.repeat(6) + 'f0ff01'], // 0xFFE0000000000001 as 10 varint bytes
  ])('encodes step %d as an int64 varint', (step, expected) => {
    expect(hex(encodeEvent({ wallTime: 0, step, fileVersion: '' }))).toBe(expected + '1a00');
  });

  it('omits proto3 defaults (step 0, wall time +0) but keeps -0 and a zero scalar', () => {
    expect(hex(encodeEvent({ wallTime: 0, step: 0, fileVersion: 'x' }))).toBe('1a0178');
    expect(hex(encodeEvent({ wallTime: -0, step: 0, fileVersion: 'x' }))).toBe('090000000000000080' + '1a0178');
    expect(hex(encodeEvent({ wallTime: 0, step: 0, scalars: [{ tag: 'a', value: 0 }] }))).toBe('2a0a' + '0a08' + '0a0161' + '1500000000');
  });

  it('encodes SessionLog START as field 7 (6 is the deprecated log_message)', () => {
    expect(hex(encodeEvent({ wallTime: 0, step: 5, sessionLog: 'START' }))).toBe('1005' + '3a02' + '0801');
    expect(() => encodeEvent({ wallTime: 0, step: 1, sessionLog: 'START', fileVersion: 'x' })).toThrow(/one of/);
  });

  it.each([
    [NaN, '0000c07f'],
    [Infinity, '0000807f'],
    [-Infinity, '000080ff'],
    [-0, '00000080'],
    [0.1, 'cdcccc3d'], // float32 nearest to 0.1 = 0x3DCCCCCD
    [16777217, '0000804b'], // 2^24 + 1 rounds to even 2^24 = 0x4B800000
    [3.5e38, '0000807f'], // beyond FLT_MAX -> +inf
    [1e-50, '00000000'], // underflows to +0, still written (oneof)
    [1e-45, '01000000'], // the smallest subnormal
  ])('stores value %p as float32 %s', (value, f32) => {
    expect(hex(encodeEvent({ wallTime: 0, step: 0, scalars: [{ tag: 'a', value }] }))).toBe('2a0a' + '0a08' + '0a0161' + '15' + f32);
  });

  it('writes a 200-byte tag with a two-byte length varint', () => {
    const tag = 'é'.repeat(100); // 200 UTF-8 bytes
    const e = encodeEvent({ wallTime: 0, step: 0, scalars: [{ tag, value: 1 }] });
    // Value = 0a c801 <200> 15 <4> = 208 bytes (d001); Summary = 0a d001 <208> = 211 bytes (d301)
    expect(hex(e.subarray(0, 9))).toBe('2ad3010ad0010ac801');
    expect(Buffer.from(e.subarray(9, 209)).toString('utf8')).toBe(tag);
    expect(e.length).toBe(3 + 211);
  });

  it('round-trips through the reader and names the file and offset of a corrupt record', async () => {
    const w = await TensorBoardWriter.open(tmp, { wallTime: 1000, hostname: 'h' });
    w.scalar('train/loss', 0.5, 3, 1001);
    w.scalar('train/loss', NaN, -4, 1002);
    await w.close();
    const events = await readEventFile(w.file);
    expect(events).toEqual([
      { wallTime: 1000, step: 0, fileVersion: 'brain.Event:2' },
      { wallTime: 1001, step: 3, scalars: [{ tag: 'train/loss', value: 0.5 }] },
      { wallTime: 1002, step: -4, scalars: [{ tag: 'train/loss', value: NaN }] },
    ]);
    const raw = await fs.readFile(w.file);
    const second = 12 + encodeEvent(events[0]).length + 4;
    const bad = Uint8Array.from(raw);
    bad[second + 14] ^= 1;
    expect(() => decodeEventRecords(bad, w.file)).toThrow(`${w.file}: record 1 at byte ${second}: payload CRC mismatch`);
    expect(() => decodeEventRecords(raw.subarray(0, raw.length - 3), w.file)).toThrow(/record 2 at byte \d+: truncated payload/);
  });

  it('rejects bad input naming the file, and never reuses an existing file', async () => {
    const a = await TensorBoardWriter.open(tmp, { wallTime: 5, hostname: 'h' });
    const b = await TensorBoardWriter.open(tmp, { wallTime: 5.5, hostname: 'h' });
    expect(path.basename(a.file)).toBe('events.out.tfevents.5.h');
    expect(path.basename(b.file)).toBe('events.out.tfevents.5.h.1');
    expect(() => a.scalar('x', 1, 1.5)).toThrow(`TensorBoard event file ${a.file}: step must be a safe integer, got 1.5`);
    expect(() => a.scalar('', 1, 1)).toThrow(/empty tag at step 1/);
    expect(() => a.scalar('x', 1, 1, NaN)).toThrow(/wall time must be finite/);
    await a.close();
    expect(() => a.scalar('x', 1, 1)).toThrow(/is closed/);
    const file = path.join(tmp, 'not-a-dir');
    await fs.writeFile(file, '');
    await expect(TensorBoardWriter.open(file)).rejects.toThrow(file);
  });
});

describe('metrics records as scalars', () => {
  it('names every numeric field by split', () => {
    expect(metricsScalars({ stage: 1, step: 3, epoch: 0, loss: 0.5, accuracy: 0.75, lr: 1e-4, examplesPerSecond: 9, 'loss/contrastive': 0.25, 'loss/ce': 0.125 })).toEqual([
      { tag: 'train/stage', value: 1 },
      { tag: 'train/epoch', value: 0 },
      { tag: 'train/loss', value: 0.5 },
      { tag: 'train/accuracy', value: 0.75 },
      { tag: 'train/lr', value: 1e-4 },
      { tag: 'train/examples_per_second', value: 9 },
      { tag: 'train/loss_contrastive', value: 0.25 },
      { tag: 'train/loss_ce', value: 0.125 },
    ]);
    expect(metricsScalars({ stage: 2, step: 4, split: 'validation', accuracy: 0.6, ci95: [0.5, 0.7], n: 20, note: 'x' })).toEqual([
      { tag: 'validation/stage', value: 2 },
      { tag: 'validation/accuracy', value: 0.6 },
      { tag: 'validation/ci95_low', value: 0.5 },
      { tag: 'validation/ci95_high', value: 0.7 },
      { tag: 'validation/n', value: 20 },
    ]);
  });

  it('switches itself off with one warning when the event file cannot be written', async () => {
    const logger = memoryLogger();
    const blocker = path.join(tmp, 'file');
    await fs.writeFile(blocker, '');
    const m = new TensorBoardMetrics(blocker, { logger });
    await m.record({ step: 1, loss: 1 }, 1);
    await m.record({ step: 2, loss: 1 }, 2);
    expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(1);
    expect(logger.records[0].message).toContain('TensorBoard logging switched off');
    expect(logger.records[0].message).toContain(blocker);
  });
});

describe('Trainer event files', () => {
  beforeAll(async () => {
    await initRuntime({ device: 'cpu' });
  });
  const opts = (over: Partial<TrainOptions> = {}): TrainOptions => ({
    stage: 1, batchSize: 2, gradAccum: 2, epochs: 2, lr: 0.05, weightDecay: 0.01, evalSteps: 3, saveSteps: 4,
    evalBatchSize: 8, outDir: tmp, expName: 'run', seed: 7, ...over,
  });
  const components = () => ({ backbone: new ToyBackbone(), dataset: toyDataset(), losses: [{ loss: ceLoss, weight: 1 }], logger: memoryLogger() });
  const eventFiles = async (dir: string) => (await fs.readdir(dir)).filter((f) => f.startsWith('events.out.tfevents.')).sort().map((f) => path.join(dir, f));
  const jsonl = async (dir: string) => (await fs.readFile(path.join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
  /** TensorBoard's reading of a run (EventAccumulator): files in name order, SessionLog START at S drops what was read with step >= S. */
  const tensorboardView = async (dir: string) => {
    let points: Array<{ tag: string; step: number; value: number; wallTime: number }> = [];
    for (const f of await eventFiles(dir)) {
      for (const e of await readEventFile(f)) {
        if (e.sessionLog === 'START') points = points.filter((p) => p.step < e.step);
        for (const s of e.scalars ?? []) points.push({ ...s, step: e.step, wallTime: e.wallTime });
      }
    }
    return points;
  };

  it('mirrors every numeric metrics.jsonl field as a scalar at the optimizer step', async () => {
    const res = await new Trainer(components(), opts()).run();
    const files = await eventFiles(res.runDir);
    expect(files).toHaveLength(1);
    const events = await readEventFile(files[0]);
    expect(events.slice(0, 3).map((e) => [e.step, e.fileVersion ?? e.sessionLog])).toEqual([[0, 'brain.Event:2'], [1, 'brain.Event:2'], [1, 'START']]);
    const lines = await jsonl(res.runDir);
    const summaries = events.slice(3);
    expect(summaries).toHaveLength(lines.length);
    expect(lines.filter((l) => l.split === 'validation').length).toBeGreaterThanOrEqual(2);
    lines.forEach((line, i) => {
      const e = summaries[i];
      expect(e.step).toBe(line.step);
      expect(e.wallTime).toBe(Date.parse(line.time) / 1000);
      const expected: Record<string, number> = {};
      const split = line.split ?? 'train';
      for (const [k, v] of Object.entries(line)) {
        if (k === 'step' || k === 'time' || k === 'split') continue;
        if (k === 'ci95') {
          expected[`${split}/ci95_low`] = Math.fround((v as number[])[0]);
          expected[`${split}/ci95_high`] = Math.fround((v as number[])[1]);
        } else expected[`${split}/${k.replace('/', '_').replace('examplesPerSecond', 'examples_per_second')}`] = Math.fround(v as number);
      }
      expect(Object.fromEntries(e.scalars!.map((s) => [s.tag, s.value]))).toEqual(expected);
    });
    expect(Object.keys(Object.fromEntries(summaries[0].scalars!.map((s) => [s.tag, 1]))).sort()).toEqual(
      ['train/accuracy', 'train/epoch', 'train/examples_per_second', 'train/loss', 'train/loss_ce', 'train/lr', 'train/stage'],
    );
  });

  it('after a crash and resume, TensorBoard shows the uninterrupted run\'s curve', async () => {
    const full = await new Trainer(components(), opts({ expName: 'full' })).run();
    const crash = new Error('simulated crash');
    await expect(new Trainer(components(), opts({ expName: 'cut', onStep: (s) => { if (s.step === 6) throw crash; } })).run()).rejects.toBe(crash);
    const cut = path.join(tmp, 'cut');
    await new Trainer({ ...components(), backbone: new ToyBackbone(123) }, opts({ expName: 'cut', resume: true })).run();
    const files = await eventFiles(cut);
    expect(files).toHaveLength(2);
    const resumed = await readEventFile(files[1]);
    expect(resumed[2]).toEqual(expect.objectContaining({ step: 5, sessionLog: 'START' })); // resumed from checkpoint-4
    const first = (await readEventFile(files[0])).flatMap((e) => (e.scalars ? [e.step] : []));
    expect(Math.max(...first)).toBe(6); // the killed run got to step 6: its 5 and 6 are orphans
    const pick = (pts: Array<{ tag: string; step: number; value: number }>) =>
      pts.filter((p) => ['train/loss', 'train/accuracy', 'train/lr', 'validation/accuracy'].includes(p.tag)).map(({ tag, step, value }) => ({ tag, step, value }));
    const shown = pick(await tensorboardView(cut));
    expect(shown).toEqual(pick(await tensorboardView(full.runDir)));
    expect(new Set(shown.map((p) => `${p.tag}@${p.step}`)).size).toBe(shown.length);
  });

  it('keeps training with metrics.jsonl when TensorBoard writes fail, warning once', async () => {
    const spy = jest.spyOn(TensorBoardWriter.prototype, 'flush').mockRejectedValue(new Error('TensorBoard event file X: ENOSPC'));
    try {
      const c = components();
      const res = await new Trainer(c, opts({ maxSteps: 4 })).run();
      expect(res.steps).toBe(4);
      expect((await jsonl(res.runDir)).filter((l) => l.split !== 'validation')).toHaveLength(4);
      const warnings = (c.logger as ReturnType<typeof memoryLogger>).records.filter((r) => r.level === 'warn');
      expect(warnings).toHaveLength(1);
      expect(warnings[0].message).toMatch(/TensorBoard logging switched off.*ENOSPC/);
    } finally {
      spy.mockRestore();
    }
  });
});
