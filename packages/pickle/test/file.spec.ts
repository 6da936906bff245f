/**
 * Pickles read from a file a window at a time (PickleFile / unpickleFile / readDataFrame(file)):
 * the same values as from memory, checked against the Python goldens with windows so small that
 * every opcode and argument straddles a window edge, and files larger than Node can read at once.
 */
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LazyBytes, PickleError, PickleFile, readDataFrame, unpickle, unpickleFile } from '../src';
import { canonActual, canonExpected, expected, fixture, FIXTURES } from './helpers';

/** Reads every LazyBytes (deeply), so the value can be compared with the goldens. */
function resolved(v: unknown, seen = new Map<unknown, unknown>()): unknown {
  if (v instanceof LazyBytes) return v.read();
  if (seen.has(v)) return seen.get(v);
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    seen.set(v, out);
    v.forEach((x) => out.push(resolved(x, seen)));
    return out;
  }
  if (v instanceof Map) {
    const out = new Map();
    seen.set(v, out);
    v.forEach((x, k) => out.set(resolved(k, seen), resolved(x, seen)));
    return out;
  }
  if (v instanceof Set) return new Set([...v].map((x) => resolved(x, seen)));
  return v;
}

const withFile = <T>(path: string, f: (file: PickleFile) => T): T => {
  const file = PickleFile.open(path);
  try {
    return f(file);
  } finally {
    file.close();
  }
};

let dir: string;
beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'pickle-file-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('unpickleFile: the Python goldens, read through a sliding window', () => {
  const want = canonExpected(expected('plain.json'));
  for (const windowBytes of [1, 7, 4096]) {
    it(`plain values of protocols 0-5 with a ${windowBytes}-byte window and every bytes value left in the file`, () => {
      for (const p of [0, 1, 2, 3, 4, 5]) {
        const v = withFile(join(FIXTURES, `plain_p${p}.pkl`), (file) => resolved(unpickleFile(file, { windowBytes, lazyBytesFrom: 1 })));
        expect({ protocol: p, value: canonActual(v) }).toEqual({ protocol: p, value: want });
      }
    });
  }

  it('leaves bytes of lazyBytesFrom or more in the file and reads smaller ones', () => {
    withFile(join(FIXTURES, 'plain_p5.pkl'), (file) => {
      const v = unpickleFile(file, { lazyBytesFrom: 1 }) as Map<string, unknown>;
      const lazy = [...v.values()].flat(2).filter((x) => x instanceof LazyBytes) as LazyBytes[];
      expect(lazy.length).toBeGreaterThan(0);
      for (const b of lazy) expect(b.read()).toEqual(fixture('plain_p5.pkl').subarray(b.offset, b.offset + b.length));
      const eager = unpickleFile(file, { lazyBytesFrom: Infinity }) as Map<string, unknown>;
      expect([...eager.values()].flat(2).some((x) => x instanceof LazyBytes)).toBe(false);
    });
  });

  it('reports a truncated file with the same offsets as the same bytes in memory', () => {
    const bytes = fixture('plain_p4.pkl');
    const cut = join(dir, 'cut.pkl');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    let inMemory = '';
    try {
      unpickle(bytes.subarray(0, Math.floor(bytes.length / 2)));
    } catch (e) {
      inMemory = (e as Error).message;
    }
    expect(inMemory).toMatch(/^unexpected end of pickle at byte \d+/);
    expect(() => withFile(cut, (file) => unpickleFile(file, { windowBytes: 7 }))).toThrow(inMemory);
  });

  it('says so when a lazy value is read after its file was closed', () => {
    const file = PickleFile.open(join(FIXTURES, 'plain_p5.pkl'));
    const v = unpickleFile(file, { lazyBytesFrom: 1 }) as Map<string, unknown>;
    file.close();
    const lazy = [...v.values()].flat(2).find((x) => x instanceof LazyBytes) as LazyBytes;
    expect(() => lazy.read()).toThrow(PickleError);
    expect(() => lazy.read()).toThrow(/plain_p5\.pkl: read at byte \d+ after the file was closed/);
  });
});

describe('readDataFrame(file): the paper release and numeric frames from pandas', () => {
  type FrameJson = { columns: string[]; length: number; data: Record<string, unknown[]> };
  const cases: Array<[string, string]> = [
    ['paper_pd2_np1_p4.pkl', 'paper.json'],
    ['paper_pd2_np1_p5.pkl', 'paper.json'],
    ['paper_pd2_np1_legacy_layout_p2.pkl', 'paper.json'],
    ['paper_pd3_np2_to_pickle.pkl', 'paper.json'],
    ['numeric_pd2_np1_p2.pkl', 'numeric.json'],
    ['numeric_pd3_np2_p4.pkl', 'numeric.json'], // protocol 4: numeric blocks are BINBYTES, read on demand
    ['extension_pd3_np2_p5.pkl', 'extension.json'],
  ];
  for (const [f, golden] of cases) {
    it(`${f} (a 5-byte window, every bytes cell lazy)`, () => {
      const want = expected<FrameJson>(golden);
      withFile(join(FIXTURES, f), (file) => {
        const df = readDataFrame(file, { windowBytes: 5, lazyBytesFrom: 1 });
        expect(df.columns).toEqual(want.columns);
        expect(df.length).toBe(want.length);
        for (const c of want.columns) {
          expect({ column: c, values: canonActual(resolved(df.column(c))) }).toEqual({ column: c, values: canonExpected(want.data[c]) });
        }
      });
    });
  }

  it('keeps bytes cells of lazyBytesFrom bytes or more in the file and reads them on demand', () => {
    withFile(join(FIXTURES, 'paper_pd3_np2_to_pickle.pkl'), (file) => {
      const cells = (df: ReturnType<typeof readDataFrame>) => [df.column('image0'), df.column('image1'), ...(df.column('reference_list') as unknown[][])].flat();
      const inMemory = cells(readDataFrame(fixture('paper_pd3_np2_to_pickle.pkl')));
      // the fixture's images are 16 bytes each
      expect(inMemory.every((x) => x instanceof Uint8Array && x.length === 16)).toBe(true);
      const lazy = cells(readDataFrame(file, { lazyBytesFrom: 16 }));
      expect(lazy.every((x) => x instanceof LazyBytes)).toBe(true);
      expect(lazy.map((x) => resolved(x))).toEqual(inMemory);
      const eager = cells(readDataFrame(file, { lazyBytesFrom: 17 }));
      expect(eager).toEqual(inMemory);
    });
  });
});

describe('unpickleFile: past 4 GiB', () => {
  it('skips a 4 GiB + 5 byte payload without reading it and reads what follows', () => {
    // PROTO 4, BINBYTES8 <2^32 + 5 bytes, a hole in a sparse file>, SHORT_BINUNICODE 'after', TUPLE2, STOP
    const n = 2 ** 32 + 5;
    const len = new Uint8Array(new BigUint64Array([BigInt(n)]).buffer);
    const big = join(dir, 'big.pkl');
    const fd = openSync(big, 'w');
    try {
      writeSync(fd, Uint8Array.from([0x80, 4, 0x8e, ...len]), 0, 11, 0);
      const tail = Uint8Array.from([0x8c, 5, ...Buffer.from('after'), 0x86, 0x2e]);
      writeSync(fd, tail, 0, tail.length, 11 + n);
    } finally {
      closeSync(fd);
    }
    expect(statSync(big).size).toBe(11 + n + 9);
    const [payload, after] = withFile(big, (file) => unpickleFile(file)) as [LazyBytes, string];
    expect(payload).toBeInstanceOf(LazyBytes);
    expect({ offset: payload.offset, length: payload.length }).toEqual({ offset: 11, length: n });
    expect(after).toBe('after');
  });
});
