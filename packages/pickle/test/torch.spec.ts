import { unzipSync } from 'fflate';
import { PickleError, PyObject, TorchTensor, findTensor, loadTorchFile, torchStateDict, unpickle } from '../src';
import { expected, fixture } from './helpers';

type TensorJson = { dtype: string; shape: number[]; requires_grad: boolean; values: unknown[] };

function expectTensor(t: TorchTensor, want: TensorJson, name: string) {
  expect({ name, dtype: t.dtype, shape: t.shape, requiresGrad: t.requiresGrad }).toEqual({
    name,
    dtype: want.dtype,
    shape: want.shape,
    requiresGrad: want.requires_grad,
  });
  // values from torch's own .float().tolist() / .tolist(): exact comparison
  const got = Array.from(t.data as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
  expect({ name, values: got }).toEqual({ name, values: want.values });
}

describe('loadTorchFile: a state dict saved by torch.save', () => {
  const want = expected<{ tensors: Record<string, TensorJson>; view: { storage_offset: number; stride: number[] } }>('state_dict.json');

  for (const file of ['state_dict.pt', 'state_dict_legacy.pt']) {
    it(`${file}: every tensor has torch's dtype, shape and values`, () => {
      const sd = torchStateDict(loadTorchFile(fixture(file)));
      expect([...sd.keys()].sort()).toEqual(Object.keys(want.tensors).sort());
      for (const [name, w] of Object.entries(want.tensors)) expectTensor(sd.get(name)!, w, name);
    });
  }

  it('decodes float16/bfloat16 to Float32Array, keeps int64 as BigInt64Array', () => {
    const sd = torchStateDict(loadTorchFile(fixture('state_dict.pt')));
    expect(sd.get('h16')!.data).toBeInstanceOf(Float32Array);
    expect(sd.get('bf16')!.data).toBeInstanceOf(Float32Array);
    expect(sd.get('f64')!.data).toBeInstanceOf(Float64Array);
    expect(sd.get('i64')!.data).toBeInstanceOf(BigInt64Array);
    expect(sd.get('scalar')!.shape).toEqual([]);
  });

  it('honours storage offset and strides of a non-contiguous view sharing a storage', () => {
    const sd = torchStateDict(loadTorchFile(fixture('state_dict.pt')));
    const view = sd.get('view')!;
    expect(view.storageOffset).toBe(want.view.storage_offset);
    expect(view.stride).toEqual(want.view.stride);
    expect(view.storage).toBe(sd.get('base')!.storage);
  });
});

describe('loadTorchFile: torch.save(module) of prompt_pool.PromptPool', () => {
  const want = expected<{ class: string; training: boolean; parameters: { prompt: TensorJson } }>('prompt_pool.json');

  for (const file of ['prompt_pool.pt', 'prompt_pool_legacy.pt']) {
    it(`${file}: the module is an inert record and its prompt parameter is exact`, () => {
      const pool = loadTorchFile(fixture(file)) as PyObject;
      expect(pool).toBeInstanceOf(PyObject);
      expect(pool.__class__).toBe(want.class);
      expect(pool.inert).toBe(true);
      expect(pool.attr('training')).toBe(want.training);
      const prompt = findTensor(pool, ['_parameters', 'prompt']);
      expect(prompt.isParameter).toBe(true);
      expectTensor(prompt, want.parameters.prompt, 'prompt');
      expect(findTensor(pool, ['prompt'])).toBe(prompt);
      expect([...torchStateDict(pool).keys()]).toEqual(['prompt']);
    });
  }

  it('refuses the module class when inert classes are off', () => {
    expect(() => loadTorchFile(fixture('prompt_pool.pt'), { inertClasses: false })).toThrow(/global prompt_pool\.PromptPool is not whitelisted/);
  });

  it('findTensor names the missing key and what is there', () => {
    const pool = loadTorchFile(fixture('prompt_pool.pt'));
    expect(() => findTensor(pool, ['_parameters', 'keys'])).toThrow("no 'keys' in _parameters (dict; keys: prompt)");
    expect(() => findTensor(pool, ['training'])).toThrow('training is bool, not a tensor');
  });

  it('a bare data.pkl needs persistentLoad for its storages', () => {
    const files = unzipSync(fixture('prompt_pool.pt'));
    const pkl = files[Object.keys(files).find((n) => n.endsWith('/data.pkl'))!];
    expect(() => unpickle(pkl, { inertClasses: true })).toThrow(/refers to a persistent id \(list\/tuple\) at byte \d+ but no persistentLoad was given/);
  });

  it('rejects files that are not torch files', () => {
    expect(() => loadTorchFile(fixture('plain_p2.pkl'))).toThrow(PickleError);
    expect(() => loadTorchFile(fixture('plain_p2.pkl'))).toThrow('not a torch file');
  });
});
