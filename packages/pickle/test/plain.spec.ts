import { PickleError, unpickle, unpickleAt } from '../src';
import { canonActual, canonExpected, expected, fixture } from './helpers';

describe('unpickle: plain Python values (fixtures from CPython pickle.dumps)', () => {
  const want = canonExpected(expected('plain.json'));

  for (const p of [0, 1, 2, 3, 4, 5]) {
    it(`protocol ${p} matches the values Python pickled`, () => {
      const v = unpickle(fixture(`plain_p${p}.pkl`)) as Map<string, unknown>;
      expect(canonActual(v)).toEqual(want);
      // the memo makes both references one object, as in Python
      const s = v.get('shared') as unknown[][];
      expect(s[0]).toBe(s[1]);
      // ints beyond 2^53 are BigInt, the others plain numbers
      const ints = v.get('ints') as unknown[];
      expect(ints[11]).toBe(2n ** 53n + 1n);
      expect(ints[10]).toBe(2 ** 53 - 1);
      expect(typeof ints[6]).toBe('number');
    });
  }

  it('keeps int dict keys as numbers and reports where a pickle ends', () => {
    const bytes = fixture('plain_p4.pkl');
    const { value, end } = unpickleAt(bytes, 0);
    expect((value as Map<string, Map<number, string>>).get('int_keys')!.get(2)).toBe('two');
    expect(end).toBe(bytes.length);
  });
});

/** Hand-assembled pickles for opcodes the fixtures do not use. */
const b = (...parts: Array<number[] | string | Uint8Array>) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : [...p])));
const u64 = (n: number) => [...new Uint8Array(new BigUint64Array([BigInt(n)]).buffer)];
const i32 = (n: number) => [...new Uint8Array(new Int32Array([n]).buffer)];

describe('unpickle: individual opcodes', () => {
  it('decodes UTF-8 text, 8-byte lengths and negative big ints', () => {
    const text = Buffer.from('h\u00e9 \u2603', 'utf8');
    const long = [0x01, 0, 0, 0, 0, 0, 0, 0, 0x80];
    const bytes = b([0x80, 4, 0x28], [0x8d], u64(text.length), text, [0x8e], u64(2), [1, 2], [0x96], u64(1), [9], [0x8b], i32(long.length), long, [0x74], '.');
    const [s, by, ba, n] = unpickle(bytes) as [string, Uint8Array, Uint8Array, bigint];
    expect(s).toBe('h\u00e9 \u2603');
    expect([...by]).toEqual([1, 2]);
    expect([...ba]).toEqual([9]);
    expect(n).toBe(-(2n ** 71n) + 1n);
  });

  it('fails clearly on an unknown opcode, naming it', () => {
    expect(() => unpickle(b([0x80, 4, 0x4e, 0xff], '.'))).toThrow('unknown pickle opcode 0xff at byte 3');
  });

  it('refuses the extension registry opcodes by name', () => {
    expect(() => unpickle(b([0x80, 2, 0x82, 1], '.'))).toThrow(/unsupported pickle opcode EXT1 \(0x82\) at byte 2/);
  });

  it('fails clearly on a truncated pickle', () => {
    const full = fixture('plain_p2.pkl');
    const cut = full.subarray(0, 700);
    expect(() => unpickle(cut)).toThrow(PickleError);
    expect(() => unpickle(cut)).toThrow(/^unexpected end of pickle at byte 700/);
    // a frame that announces more than is there (protocol 4+)
    expect(() => unpickle(fixture('plain_p4.pkl').subarray(0, 40))).toThrow(/^unexpected end of pickle at byte 40: FRAME at byte 2/);
    // no STOP
    expect(() => unpickle(b([0x80, 2, 0x4e]))).toThrow('unexpected end of pickle at byte 3: no STOP opcode');
  });

  it('reports stack underflow and missing marks instead of crashing', () => {
    expect(() => unpickle(b([0x80, 2], 'a.'))).toThrow(/stack underflow at APPEND/);
    expect(() => unpickle(b([0x80, 2], 't.'))).toThrow(/TUPLE \(0x74\) at byte 2 needs a MARK/);
    expect(() => unpickle(b([0x80, 2, 0x68, 7], '.'))).toThrow(/memo key 7 is not defined/);
  });
});

describe('unpickle: protocol 5 out-of-band buffers', () => {
  const meta = expected('oob_p5.json');
  const pkl = fixture('oob_p5.pkl');
  const all = fixture('oob_p5.buffers.bin');
  const [n0, n1] = meta.buffer_lengths as number[];
  const buffers = [all.subarray(0, n0), all.subarray(n0, n0 + n1)];

  it('uses the buffers given, in order (NEXT_BUFFER / READONLY_BUFFER)', () => {
    const v = unpickle(pkl, { buffers }) as Map<string, any>;
    const arr = v.get('arr');
    expect(arr.shape).toEqual(meta.arr.shape);
    expect(Array.from(arr.data)).toEqual(meta.arr.values);
    expect(Buffer.from(v.get('ba')).toString('hex')).toBe(meta.ba);
  });

  it('fails clearly when the buffers are absent', () => {
    expect(() => unpickle(pkl)).toThrow(/needs out-of-band buffer #0 \(NEXT_BUFFER at byte 59\) but 0 were given/);
    expect(() => unpickle(pkl, { buffers: buffers.slice(0, 1) })).toThrow(/buffer #1 .* but 1 were given/);
  });
});
