import { existsSync, rmSync } from 'node:fs';
import { PickleError, TorchTensor, isOrderedDict, loadTorchFile, pyAttributes, torchStateDict, unpickle } from '../src';
import { expected, fixture } from './helpers';

/*
 * Real torch.save(module.state_dict()) files, made by goldens/make_torch_state_dict_fixtures.py
 * from real nn.Modules. A state_dict() is an OrderedDict whose `_metadata` attribute reaches the
 * pickle as BUILD {'_metadata': ...} on the dict.
 */

type TensorJson = { dtype: string; shape: number[]; storage_offset: number; stride: number[]; values: unknown[] };
type StateDictJson = { keys: string[]; tensors: Record<string, TensorJson>; shared_storages: string[][]; metadata: Record<string, Record<string, number>> };

const value = (v: unknown) => (typeof v === 'bigint' ? Number(v) : v);

/** Map (of Maps) -> plain object, for comparing with the JSON torch wrote. */
function plain(v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  return value(v);
}

for (const name of ['module_state_dict', 'prompt_pool_state_dict']) {
  describe(`loadTorchFile: torch.save(${name === 'module_state_dict' ? 'a small nn.Module' : 'PromptPool'}.state_dict())`, () => {
    const want = expected<StateDictJson>(`${name}.json`);

    for (const file of [`${name}.pt`, `${name}_legacy.pt`]) {
      it(`${file}: the keys in torch's order, each tensor with torch's dtype, shape, view and values`, () => {
        const sd = loadTorchFile(fixture(file));
        expect(sd).toBeInstanceOf(Map);
        const m = sd as Map<string, TorchTensor>;
        expect([...m.keys()]).toEqual(want.keys);
        for (const [k, w] of Object.entries(want.tensors)) {
          const t = m.get(k)!;
          expect(t).toBeInstanceOf(TorchTensor);
          expect({ k, dtype: t.dtype, shape: t.shape, offset: t.storageOffset, stride: t.stride }).toEqual({
            k,
            dtype: w.dtype,
            shape: w.shape,
            offset: w.storage_offset,
            stride: w.stride,
          });
          // torch's values through float64: exact
          expect({ k, values: Array.from(t.data as ArrayLike<number | bigint>, value) }).toEqual({ k, values: w.values });
        }
        // torchStateDict of the loaded dict names the same tensors (the attribute is not an item)
        expect([...torchStateDict(sd).keys()]).toEqual(want.keys);
      });

      it(`${file}: the _metadata attribute is kept beside the items, as torch has it`, () => {
        const sd = loadTorchFile(fixture(file));
        expect(isOrderedDict(sd)).toBe(true);
        const attrs = pyAttributes(sd)!;
        expect([...attrs.keys()]).toEqual(['_metadata']);
        expect(plain(attrs.get('_metadata'))).toEqual(want.metadata);
        expect((sd as Map<string, unknown>).has('_metadata')).toBe(false);
      });

      it(`${file}: tensors that share a storage in torch share one storage here`, () => {
        const m = loadTorchFile(fixture(file)) as Map<string, TorchTensor>;
        for (const group of want.shared_storages) {
          for (const k of group.slice(1)) expect({ k, same: m.get(k)!.storage === m.get(group[0])!.storage }).toEqual({ k, same: true });
        }
        const groups = new Set([...m.values()].map((t) => t.storage));
        expect(groups.size).toBe(want.keys.length - want.shared_storages.reduce((n, g) => n + g.length - 1, 0));
      });
    }
  });
}

describe('the module state_dict fixture holds what a real state_dict brings', () => {
  // Guards the fixture itself: if torch stopped producing these, the tests above would prove less.
  const want = expected<StateDictJson>('module_state_dict.json');
  it('non-contiguous and offset views of a shared storage, a tied weight, int64, float16, an empty tensor, versions', () => {
    expect(want.shared_storages).toEqual([
      ['lin_t', 'lin_cols', 'lin.weight'],
      ['head.weight', 'tied.weight'],
    ]);
    expect(want.tensors.lin_t.stride).toEqual([1, 6]);
    expect(want.tensors.lin_cols.storage_offset).toBe(6);
    expect(want.tensors['norm.num_batches_tracked'].dtype).toBe('int64');
    expect(want.tensors.h16.dtype).toBe('float16');
    expect(want.tensors.empty.shape).toEqual([0, 3]);
    expect(want.keys).not.toContain('scratch'); // non-persistent buffer
    expect(want.metadata.norm).toEqual({ version: 2 });
  });
});

describe('BUILD on a dict: only attributes of an OrderedDict, nothing executed', () => {
  const PWNED = '/tmp/userpref-pickle-pwned';
  beforeAll(() => rmSync(PWNED, { force: true }));
  afterAll(() => expect(existsSync(PWNED)).toBe(false));

  const p2 = (body: string) => Uint8Array.from([0x80, 2, ...Buffer.from(body + '.', 'latin1')]);
  const str = (s: string) => `X${String.fromCharCode(s.length)}\x00\x00\x00${s}`;
  const od = 'ccollections\nOrderedDict\n)R';

  it('OrderedDict() + item + BUILD {"x": 1}: the item stays an item, x is an attribute', () => {
    const v = unpickle(p2(`${od}${str('a')}K\x01s}${str('x')}K\x01sb`)) as Map<unknown, unknown>;
    expect([...v]).toEqual([['a', 1]]);
    expect([...pyAttributes(v)!]).toEqual([['x', 1]]);
  });

  it('OrderedDict state as a (dict, None) pair is accepted; an empty state sets nothing', () => {
    const pair = unpickle(p2(`${od}}${str('x')}K\x02sN\x86b`));
    expect([...pyAttributes(pair)!]).toEqual([['x', 2]]);
    expect(pyAttributes(unpickle(p2(`${od}}b`)))).toBeUndefined();
    expect(pyAttributes(unpickle(p2(`${od}Nb`)))).toBeUndefined();
  });

  it('a plain dict has no attributes: refused, as Python refuses it', () => {
    expect(() => unpickle(p2(`}}${str('x')}K\x01sb`))).toThrow(/^BUILD on dict is not supported: a plain dict has no attributes/);
  });

  it('slot state, a non-dict state, non-str attribute names and BUILD on a list are refused', () => {
    expect(() => unpickle(p2(`${od}}${str('x')}K\x01s}${str('y')}K\x02s\x86b`))).toThrow(/OrderedDict has no slots, but the state sets slots \(dict\)/);
    expect(() => unpickle(p2(`${od}K\x05b`))).toThrow(/OrderedDict state must be a dict of attributes, got int/);
    expect(() => unpickle(p2(`${od}]K\x01ab`))).toThrow(/OrderedDict state must be a dict or a \(dict, None\) pair, got a sequence of 1/);
    expect(() => unpickle(p2(`${od}}K\x01K\x02sb`))).toThrow(/OrderedDict attribute names must be str, got int/);
    expect(() => unpickle(p2(`]}${str('x')}K\x01sb`))).toThrow(/^BUILD on list\/tuple is not supported \(byte \d+\)/);
  });

  it('a call smuggled into the attribute state is refused, inert classes or not', () => {
    const cmd = `touch ${PWNED}`;
    const bytes = p2(`${od}}${str('_metadata')}cos\nsystem\nX${String.fromCharCode(cmd.length)}\x00\x00\x00${cmd}\x85Rsb`);
    expect(() => unpickle(bytes)).toThrow(PickleError);
    expect(() => unpickle(bytes)).toThrow(/global os\.system is not whitelisted/);
    expect(() => unpickle(bytes, { inertClasses: true })).toThrow(/refusing to call os\.system/);
  });
});
