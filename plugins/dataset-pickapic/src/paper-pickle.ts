/**
 * Reader 2: the paper's processed release (SPEC §6), pickled pandas DataFrames with one row per
 * (user, target comparison): user_id, reference_list (liked image bytes), reference_list_bad
 * (disliked, same length), reference_prompt_list, image0, image1, prompt, label0 (1 = image0
 * preferred). Unpickled by @userpref/pickle, which executes nothing. The file is read a window
 * at a time and its images stay on disk until a row asks for them, so a pickle of several GB (the
 * release's training splits) needs memory for its structure only.
 */
import { PickleFile, bytesValue, readDataFrame, type DataFrame } from '@userpref/pickle';
import { PickapicFormatError } from './parquet-io';

export const PAPER_COLUMNS = ['user_id', 'reference_list', 'reference_list_bad', 'reference_prompt_list', 'image0', 'image1', 'prompt', 'label0'] as const;

export interface PaperRow {
  readonly userId: string | null;
  readonly prompt: string | null;
  readonly label0: number;
  readonly image0: Uint8Array | null;
  readonly image1: Uint8Array | null;
  readonly liked: Array<Uint8Array | null>;
  readonly disliked: Array<Uint8Array | null>;
  readonly prompts: Array<string | null>;
}

export interface PaperFrame {
  readonly length: number;
  readonly byteLength: number;
  /** Rows `start..end`, their images read from the file now. */
  rows(start: number, end: number): PaperRow[];
  /** Closes the file: rows can no longer be read. */
  close(): void;
}

/** Image bytes (read from the file if they were left there), also inside the
 *  {'bytes': b'...', 'path': ...} dicts of PIL-free releases (HF Image feature). */
function bytesOf(v: unknown): Uint8Array | null {
  const direct = bytesValue(v);
  if (direct) return direct;
  if (v && typeof v === 'object') return bytesValue(v instanceof Map ? v.get('bytes') : (v as Record<string, unknown>).bytes) ?? null;
  return null;
}

function listOf(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object' && Symbol.iterator in (v as object) && !(v instanceof Uint8Array)) return [...(v as Iterable<unknown>)];
  return [];
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v));
const num = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : typeof v === 'boolean' ? Number(v) : NaN);

/** Opens one of the release's pickles; the caller closes the frame when done with its rows. */
export async function readPaperPickle(file: string): Promise<PaperFrame> {
  const pickle = PickleFile.open(file);
  let frame: DataFrame;
  let col: Record<(typeof PAPER_COLUMNS)[number], unknown[]>;
  try {
    if (pickle.size === 0) throw new PickapicFormatError(`${file}: file is empty (0 bytes), not a pickle`);
    try {
      frame = readDataFrame(pickle);
    } catch (err) {
      throw new PickapicFormatError(`${file}: not a readable pandas DataFrame pickle: ${(err as Error).message}`);
    }
    const missing = PAPER_COLUMNS.filter((c) => !frame.columns.includes(c));
    if (missing.length) throw new PickapicFormatError(`${file}: missing column(s) ${missing.map((m) => `'${m}'`).join(', ')} of the paper's release (columns found: ${frame.columns.join(', ')})`);
    col = Object.fromEntries(PAPER_COLUMNS.map((c) => [c, frame.column(c)])) as typeof col;
  } catch (err) {
    pickle.close();
    throw err;
  }
  return {
    length: frame.length,
    byteLength: pickle.size,
    close: () => pickle.close(),
    rows(start, end) {
      if (pickle.closed) throw new Error(`${file}: rows ${start}..${end} read after the file was closed`);
      const out: PaperRow[] = [];
      for (let i = start; i < end; i++) {
        out.push({
          userId: str(col.user_id[i]),
          prompt: str(col.prompt[i]),
          label0: num(col.label0[i]),
          image0: bytesOf(col.image0[i]),
          image1: bytesOf(col.image1[i]),
          liked: listOf(col.reference_list[i]).map(bytesOf),
          disliked: listOf(col.reference_list_bad[i]).map(bytesOf),
          prompts: listOf(col.reference_prompt_list[i]).map(str),
        });
      }
      return out;
    },
  };
}

/** The image bytes of a row (targets and references). */
export function rowImageBytes(r: PaperRow): number {
  let n = (r.image0?.byteLength ?? 0) + (r.image1?.byteLength ?? 0);
  for (const b of r.liked) n += b?.byteLength ?? 0;
  for (const b of r.disliked) n += b?.byteLength ?? 0;
  return n;
}

/**
 * The frame's rows in batches of at most `maxRows` rows that stop at the row reaching `maxBytes`
 * of images: a release row carries its whole history (17+ images), so a row count alone would let
 * large images take gigabytes per batch.
 */
export function* paperRowBatches(frame: PaperFrame, limits: { maxRows: number; maxBytes: number }): Generator<{ start: number; rows: PaperRow[]; bytes: number }> {
  let start = 0;
  while (start < frame.length) {
    const rows: PaperRow[] = [];
    let bytes = 0;
    while (start + rows.length < frame.length && rows.length < limits.maxRows && bytes < limits.maxBytes) {
      const [r] = frame.rows(start + rows.length, start + rows.length + 1);
      rows.push(r);
      bytes += rowImageBytes(r);
    }
    yield { start, rows, bytes };
    start += rows.length;
  }
}
