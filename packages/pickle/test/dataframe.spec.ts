import { PickleError, readDataFrame } from '../src';
import { canonActual, canonExpected, expected, fixture } from './helpers';

type FrameJson = { columns: string[]; length: number; data: Record<string, unknown[]> };

function expectFrame(file: string, want: FrameJson) {
  const df = readDataFrame(fixture(file));
  expect(df.columns).toEqual(want.columns);
  expect(df.length).toBe(want.length);
  for (const c of want.columns) {
    expect({ column: c, values: canonActual(df.column(c)) }).toEqual({ column: c, values: canonExpected(want.data[c]) });
  }
  return df;
}

describe('readDataFrame: the paper columns (real pandas pickles)', () => {
  const want = expected<FrameJson>('paper.json');
  const files = [
    'paper_pd2_np1_p4.pkl', // pandas 2.2 + numpy 1.26, pickle protocol 4
    'paper_pd2_np1_p5.pkl', // protocol 5 (in-band PickleBuffers)
    'paper_pd2_np1_to_pickle.pkl', // DataFrame.to_pickle
    'paper_pd2_np1_legacy_layout_p2.pkl', // pandas <= 1.2 BlockManager state, protocol 2
    'paper_pd3_np2_p5.pkl', // pandas 3 + numpy 2: Arrow-backed str columns and labels
    'paper_pd3_np2_to_pickle.pkl',
  ];
  for (const f of files) {
    it(`${f} matches pandas' own values`, () => {
      const df = expectFrame(f, want);
      // the types the dataset loader relies on
      const refs = df.column('reference_list') as Uint8Array[][];
      expect(refs[0][0]).toBeInstanceOf(Uint8Array);
      expect(df.column('image0')[1]).toBeInstanceOf(Uint8Array);
      expect(typeof df.column('prompt')[0]).toBe('string');
      expect(df.column('label0')).toEqual([1, 0, 1]);
      expect(df.column('user_id')).toEqual([101, 202, 303]);
    });
  }

  it('names a missing column and lists the real ones', () => {
    const df = readDataFrame(fixture('paper_pd2_np1_p4.pkl'));
    expect(() => df.column('label1')).toThrow("no column 'label1' (columns: user_id, reference_list,");
  });
});

describe('readDataFrame: numeric blocks decoded from raw buffers', () => {
  const want = expected<FrameJson>('numeric.json');
  for (const f of ['numeric_pd2_np1_p5.pkl', 'numeric_pd2_np1_p2.pkl', 'numeric_pd3_np2_p4.pkl']) {
    it(`${f}: int64 (BigInt past 2^53), float64 (NaN kept), bool, a Fortran-ordered 2-column block`, () => {
      const df = expectFrame(f, want);
      expect(df.column('i')[0]).toBe(2n ** 53n + 1n);
      expect(df.column('i')[1]).toBe(-7);
      expect(Number.isNaN(df.column('f')[1] as number)).toBe(true);
      expect(df.column('b')).toEqual([true, false, true]);
      expect(df.column('m1')).toEqual([0.25, 0.75, 1.25]);
    });
  }
});

describe('readDataFrame: pandas extension arrays', () => {
  it('nullable Int64/Float64/boolean and python/pyarrow strings, missing -> null', () => {
    const df = expectFrame('extension_pd3_np2_p5.pkl', expected<FrameJson>('extension.json'));
    expect(df.column('ni')).toEqual([1, null, -3]);
    expect(df.column('sa')).toEqual(['p', 'q', null]);
  });
});

describe('readDataFrame: errors', () => {
  it('rejects a pickle that is not a DataFrame', () => {
    expect(() => readDataFrame(fixture('plain_p4.pkl'))).toThrow('not a DataFrame pickle: it holds dict');
  });

  it('names an unsupported block type (a Categorical column)', () => {
    let err: unknown;
    try {
      readDataFrame(fixture('categorical_pd2_np1_p5.pkl')).column('c');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PickleError);
    expect((err as Error).message).toBe("column 'c' (block 0): unsupported block/array type pandas.core.arrays.categorical.Categorical");
  });
});
