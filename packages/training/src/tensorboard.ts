/**
 * TensorBoard event files for the training scalars, next to metrics.jsonl, so `tensorboard --logdir
 * <outDir>` shows every run's curves without a converter.
 *
 * Format (what TensorFlow's EventsWriter and tensorboardX write): one TFRecord file of `Event`
 * protos. Each record is uint64 LE length, masked CRC32C of those 8 bytes, the payload, masked
 * CRC32C of the payload (mask = rotate right 15 + 0xa282ead8). The first event carries
 * file_version "brain.Event:2"; a scalar is Event{wall_time, step, summary{value{tag, simple_value
 * (float32)}}}. Fields at their proto3 default (step 0, wall_time +0) are omitted, as protobuf does.
 *
 * Libraries: no maintained Node writer for event files exists (the one TFRecord package found on
 * npm, @roboflow/tfrecords, writes tf.Example records and pulls deprecated crypto-js 3 and shortid), so
 * the framing (20 lines) is written here; the two pieces with real edge cases are not:
 * protobufjs (maintained, pure JS, typed, already in the tree through onnxruntime-web) encodes the
 * protos from the .proto subset below (int64 varints incl. negative steps, float32 rounding, UTF-8),
 * and @aws-crypto/crc32c (AWS SDK v3's pure-JS CRC32C, typed, no install scripts) does the CRC.
 * test/tensorboard.spec.ts checks the bytes against files written by tensorboardX.
 *
 * Resume: a resumed run must not leave the killed run's later steps in TensorBoard. The writer
 * does what tensorboardX's `SummaryWriter(purge_step=S)` does: after the header it writes a second
 * file_version event and a SessionLog START event, both at step S. TensorBoard's Python loader
 * (EventAccumulator, purge_orphaned_data on by default) then drops every event with step >= S
 * read before (files of a run are read in name order; names start with the creation time). The
 * Rust loader (tensorboard-data-server) ignores SessionLog but drops a series' points at steps >=
 * a step that arrives again, so there the stale tail of each tag goes once the new run logs it.
 * The Trainer passes purgeStep = first step it will log (1 on a fresh run, S + 1 when resuming
 * from checkpoint-S): a rerun into the same directory likewise hides the older run's curves.
 *
 * Durability: events are buffered by `scalar` and appended by `flush` (the Trainer flushes after
 * every metrics record), so no descriptor stays open and a crash loses at most the unflushed
 * events; a truncated last record is what TensorBoard expects from a live file.
 */
import { promises as fs } from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as protobuf from 'protobufjs';
import { crc32c } from '@aws-crypto/crc32c';
import type { Logger } from '@userpref/core';

// Subset of tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto.
const PROTO = `
syntax = "proto3";
package tensorboard;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
    // 6 is the deprecated LogMessage; session_log is 7.
    SessionLog session_log = 7;
  }
}
message Summary {
  message Value {
    string tag = 1;
    oneof value { float simple_value = 2; }
  }
  repeated Value value = 1;
}
message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
`;
const EventType = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('tensorboard.Event');

export const FILE_VERSION = 'brain.Event:2';
const SESSION_STATUS = ['STATUS_UNSPECIFIED', 'START', 'STOP', 'CHECKPOINT'] as const;
export type SessionStatus = (typeof SESSION_STATUS)[number];

/** One decoded event; `scalars` holds the summary's simple values (float32 widened to double). */
export interface TensorBoardEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  sessionLog?: SessionStatus;
  scalars?: Array<{ tag: string; value: number }>;
  /** Summary values that are not simple scalars (images, tensors, ...): counted, not decoded. */
  otherValues?: number;
}

/** TFRecord's masked CRC32C: rotate right by 15, add 0xa282ead8 (mod 2^32). */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** Protobuf bytes of one event. */
export function encodeEvent(e: TensorBoardEvent): Uint8Array {
  if (!Number.isSafeInteger(e.step)) throw new Error(`step must be a safe integer, got ${e.step}`);
  const msg: Record<string, unknown> = {};
  if (!Object.is(e.wallTime, 0)) msg.wall_time = e.wallTime;
  if (e.step !== 0) msg.step = e.step;
  const what = [e.fileVersion !== undefined, e.sessionLog !== undefined, e.scalars !== undefined].filter(Boolean).length;
  if (what > 1) throw new Error('an event holds one of fileVersion, sessionLog, scalars');
  if (e.fileVersion !== undefined) msg.file_version = e.fileVersion;
  if (e.sessionLog !== undefined) msg.session_log = { status: SESSION_STATUS.indexOf(e.sessionLog) };
  if (e.scalars !== undefined) msg.summary = { value: e.scalars.map((s) => ({ tag: s.tag, simple_value: s.value })) };
  return EventType.encode(msg).finish();
}

/** One TFRecord: length, masked CRC of the length, payload, masked CRC of the payload. */
export function frameRecord(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + payload.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(payload.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(payload, 12);
  view.setUint32(12 + payload.length, maskedCrc32c(payload), true);
  return out;
}

/** Decodes a whole event file's bytes; `file` only names the source in errors. */
export function decodeEventRecords(bytes: Uint8Array, file: string): TensorBoardEvent[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const events: TensorBoardEvent[] = [];
  let off = 0;
  while (off < bytes.length) {
    const at = `${file}: record ${events.length} at byte ${off}`;
    if (off + 12 > bytes.length) throw new Error(`${at}: truncated header (${bytes.length - off} bytes left)`);
    if (view.getUint32(off + 8, true) !== maskedCrc32c(bytes.subarray(off, off + 8))) throw new Error(`${at}: length CRC mismatch`);
    const len = Number(view.getBigUint64(off, true));
    if (off + 12 + len + 4 > bytes.length) throw new Error(`${at}: truncated payload (length ${len}, ${bytes.length - off - 12} bytes left)`);
    const payload = bytes.subarray(off + 12, off + 12 + len);
    if (view.getUint32(off + 12 + len, true) !== maskedCrc32c(payload)) throw new Error(`${at}: payload CRC mismatch`);
    let o: Record<string, any>;
    try {
      o = EventType.toObject(EventType.decode(payload), { longs: String });
    } catch (err) {
      throw new Error(`${at}: not an Event proto (${(err as Error).message})`);
    }
    const step = Number(o.step ?? 0);
    if (!Number.isSafeInteger(step)) throw new Error(`${at}: step ${o.step} is beyond 2^53`);
    const e: TensorBoardEvent = { wallTime: o.wall_time ?? 0, step };
    if (o.file_version !== undefined) e.fileVersion = o.file_version;
    if (o.session_log !== undefined) e.sessionLog = SESSION_STATUS[o.session_log.status ?? 0] ?? 'STATUS_UNSPECIFIED';
    if (o.summary !== undefined) {
      const values: Array<{ tag?: string; simple_value?: number }> = o.summary.value ?? [];
      e.scalars = values.filter((v) => v.simple_value !== undefined).map((v) => ({ tag: v.tag ?? '', value: v.simple_value! }));
      const other = values.length - e.scalars.length;
      if (other) e.otherValues = other;
    }
    events.push(e);
    off += 12 + len + 4;
  }
  return events;
}

export async function readEventFile(file: string): Promise<TensorBoardEvent[]> {
  return decodeEventRecords(await fs.readFile(file), file);
}

export interface TensorBoardWriterOptions {
  /**
   * Step from which TensorBoard should forget everything logged before this file (a resumed run
   * passes the first step it will log): written as tensorboardX's purge_step is.
   */
  purgeStep?: number;
  /** Wall time of the header events, seconds since the epoch (default now); also names the file. */
  wallTime?: number;
  /** Default os.hostname(). */
  hostname?: string;
  /** Appended to the file name. */
  suffix?: string;
}

/** Appends scalar events to one new event file `events.out.tfevents.<secs>.<hostname><suffix>`. */
export class TensorBoardWriter {
  private pending: Uint8Array[] = [];
  private closed = false;

  private constructor(readonly file: string) {}

  /**
   * Creates the directory and a new event file with its header; never appends to an existing file
   * (a name taken in the same second gets `.1`, `.2`, ..., which sorts after it).
   */
  static async open(dir: string, options: TensorBoardWriterOptions = {}): Promise<TensorBoardWriter> {
    const wallTime = options.wallTime ?? Date.now() / 1000;
    const base = path.join(dir, `events.out.tfevents.${Math.floor(wallTime)}.${options.hostname ?? os.hostname()}${options.suffix ?? ''}`);
    const header = [frameRecord(encodeEvent({ wallTime, step: 0, fileVersion: FILE_VERSION }))];
    if (options.purgeStep !== undefined) {
      if (!Number.isSafeInteger(options.purgeStep)) throw new Error(`TensorBoard purgeStep must be a safe integer, got ${options.purgeStep}`);
      header.push(frameRecord(encodeEvent({ wallTime, step: options.purgeStep, fileVersion: FILE_VERSION })));
      header.push(frameRecord(encodeEvent({ wallTime, step: options.purgeStep, sessionLog: 'START' })));
    }
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (err) {
      throw new Error(`TensorBoard log directory ${dir}: ${(err as Error).message}`);
    }
    for (let n = 0; ; n++) {
      const file = n ? `${base}.${n}` : base;
      try {
        await fs.writeFile(file, Buffer.concat(header), { flag: 'wx' });
        return new TensorBoardWriter(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || n >= 1000) throw new Error(`TensorBoard event file ${file}: ${(err as Error).message}`);
      }
    }
  }

  /** Buffers one scalar event (`value` is stored as float32, like every TensorBoard scalar). */
  scalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    this.scalars([{ tag, value }], step, wallTime);
  }

  /** Buffers several scalars of one step as one event. */
  scalars(values: ReadonlyArray<{ tag: string; value: number }>, step: number, wallTime = Date.now() / 1000): void {
    if (this.closed) throw new Error(`TensorBoard event file ${this.file} is closed`);
    for (const { tag, value } of values) {
      if (typeof tag !== 'string' || !tag) throw new Error(`TensorBoard event file ${this.file}: empty tag at step ${step}`);
      if (typeof value !== 'number') throw new Error(`TensorBoard event file ${this.file}: tag ${tag} at step ${step} has non-number value ${String(value)}`);
    }
    if (!Number.isSafeInteger(step)) throw new Error(`TensorBoard event file ${this.file}: step must be a safe integer, got ${step}`);
    if (!Number.isFinite(wallTime)) throw new Error(`TensorBoard event file ${this.file}: wall time must be finite, got ${wallTime}`);
    this.pending.push(frameRecord(encodeEvent({ wallTime, step, scalars: values.map(({ tag, value }) => ({ tag, value })) })));
  }

  /** Appends the buffered events. On failure they are dropped (a partial append may be on disk). */
  async flush(): Promise<void> {
    if (!this.pending.length) return;
    const bytes = Buffer.concat(this.pending);
    this.pending = [];
    try {
      await fs.appendFile(this.file, bytes);
    } catch (err) {
      throw new Error(`TensorBoard event file ${this.file}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
  }
}

/** `examplesPerSecond` -> `examples_per_second`, `loss/contrastive` -> `loss_contrastive`. */
function snake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[^A-Za-z0-9_.-]+/g, '_').toLowerCase();
}

/**
 * The scalars of one metrics.jsonl record: every numeric field (and numeric array: `ci95` becomes
 * `_low`/`_high`, others `_0`, `_1`, ...) as `<split>/<snake_case key>`, split = record.split or
 * 'train'. `step`, `time` and `split` are the coordinates, not values.
 */
export function metricsScalars(record: Record<string, unknown>): Array<{ tag: string; value: number }> {
  const split = typeof record.split === 'string' ? record.split : 'train';
  const out: Array<{ tag: string; value: number }> = [];
  for (const [k, v] of Object.entries(record)) {
    if (k === 'step' || k === 'time' || k === 'split') continue;
    const tag = `${split}/${snake(k)}`;
    if (typeof v === 'number') out.push({ tag, value: v });
    else if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'number')) {
      const names = k === 'ci95' && v.length === 2 ? ['low', 'high'] : v.map((_, i) => String(i));
      v.forEach((x, i) => out.push({ tag: `${tag}_${names[i]}`, value: x }));
    }
  }
  return out;
}

/**
 * The Trainer's TensorBoard mirror of metrics.jsonl. It never throws: the first failure (opening
 * or appending) is logged once as a warning and the mirror switches off; metrics.jsonl goes on.
 */
export class TensorBoardMetrics {
  private writer?: TensorBoardWriter;
  private failed = false;

  constructor(
    private readonly dir: string,
    private readonly options: { purgeStep?: number; logger: Logger },
  ) {}

  /** The event file once opened (after the first record). */
  get file(): string | undefined {
    return this.writer?.file;
  }

  /** Writes the record's scalars as one event at `record.step`, stamped `wallTime` (seconds). */
  async record(record: Record<string, unknown>, wallTime: number): Promise<void> {
    if (this.failed) return;
    try {
      this.writer ??= await TensorBoardWriter.open(this.dir, { purgeStep: this.options.purgeStep, wallTime });
      const step = record.step;
      if (typeof step !== 'number') throw new Error(`TensorBoard event file ${this.writer.file}: metrics record has no numeric step`);
      const scalars = metricsScalars(record);
      if (scalars.length) this.writer.scalars(scalars, step, wallTime);
      await this.writer.flush();
    } catch (err) {
      this.failed = true;
      this.options.logger.warn(`TensorBoard logging switched off, metrics continue in metrics.jsonl only: ${(err as Error).message}`, { dir: this.dir });
    }
  }
}
