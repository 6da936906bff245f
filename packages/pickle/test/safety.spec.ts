import { existsSync, rmSync } from 'node:fs';
import { zipSync } from 'fflate';
import { PickleError, PyObject, WHITELIST, loadTorchFile, readDataFrame, unpickle } from '../src';
import { canonActual, canonExpected, expected, fixture } from './helpers';

// the file each malicious pickle would create if anything ever ran it
const PWNED = '/tmp/userpref-pickle-pwned';

describe('nothing is ever executed', () => {
  beforeAll(() => rmSync(PWNED, { force: true }));
  afterAll(() => expect(existsSync(PWNED)).toBe(false));

  it('a hand-assembled STACK_GLOBAL os.system + REDUCE is refused at the global, naming it', () => {
    const bytes = fixture('malicious_os_system.pkl');
    expect(() => unpickle(bytes)).toThrow(PickleError);
    expect(() => unpickle(bytes)).toThrow(/^global os\.system is not whitelisted \(STACK_GLOBAL \(0x93\) at byte 14\)/);
    expect(existsSync(PWNED)).toBe(false);
  });

  it('inert-class mode still refuses to call it', () => {
    expect(() => unpickle(fixture('malicious_os_system.pkl'), { inertClasses: true })).toThrow(
      /^refusing to call os\.system \(REDUCE \(0x52\) at byte 50\): it is not whitelisted/,
    );
    expect(existsSync(PWNED)).toBe(false);
  });

  it('a __reduce__ returning os.system (pickled as posix.system, protocol 2) is refused', () => {
    const bytes = fixture('malicious_reduce_p2.pkl');
    expect(() => unpickle(bytes)).toThrow(/global posix\.system is not whitelisted \(GLOBAL/);
    expect(() => unpickle(bytes, { inertClasses: true })).toThrow(/refusing to call posix\.system/);
    expect(() => readDataFrame(bytes)).toThrow(/refusing to call posix\.system/);
  });

  it('a call smuggled into the state of an inert module is refused', () => {
    const bytes = fixture('malicious_inert_smuggle.pkl');
    expect(() => unpickle(bytes, { inertClasses: true })).toThrow(/refusing to call os\.system/);
  });

  it('an inert class is only recorded, never called: PromptPool() with state', () => {
    // NEWOBJ prompt_pool.PromptPool () + BUILD {'x': 1}
    const bytes = Uint8Array.from([
      0x80, 2, ...Buffer.from('cprompt_pool\nPromptPool\n)\x81}X\x01\x00\x00\x00xK\x01sb.', 'latin1'),
    ]);
    const obj = unpickle(bytes, { inertClasses: true }) as PyObject;
    expect(obj.__class__).toBe('prompt_pool.PromptPool');
    expect(obj.state).toEqual(new Map([['x', 1]]));
    // calling the same class (REDUCE) would run its __init__: refused
    const called = Uint8Array.from([0x80, 2, ...Buffer.from('cprompt_pool\nPromptPool\n)R.', 'latin1')]);
    expect(() => unpickle(called, { inertClasses: true })).toThrow(/refusing to call prompt_pool\.PromptPool/);
  });

  for (const p of [0, 1, 2, 4]) {
    it(`an unknown class pickled by CPython with protocol ${p} (${p < 2 ? 'copyreg._reconstructor' : 'NEWOBJ'} + BUILD) is an inert record`, () => {
      const want = expected('inert_record.json');
      const bytes = fixture(`inert_record_p${p}.pkl`);
      const rec = unpickle(bytes, { inertClasses: true }) as PyObject;
      expect(rec).toBeInstanceOf(PyObject);
      expect(rec.__class__).toBe(want.class);
      expect(rec.inert).toBe(true);
      expect(canonActual(rec.state)).toEqual(canonExpected(want.state));
      expect(() => unpickle(bytes)).toThrow(/global legacy_record\.Record is not whitelisted/);
    });
  }

  it('a torch zip whose data.pkl calls os.system is refused', () => {
    const zip = zipSync({ 'evil/data.pkl': fixture('malicious_os_system.pkl'), 'evil/version': new TextEncoder().encode('3\n') });
    expect(() => loadTorchFile(zip)).toThrow(/refusing to call os\.system/);
  });

  it('the whitelist holds no code-running entry points', () => {
    const dangerous = /^(os|posix|nt|subprocess|sys|shutil|importlib|runpy|pickle|marshal|types|functools|operator|code|ctypes)\.|^builtins\.(eval|exec|compile|getattr|setattr|__import__|open|globals|vars|input|breakpoint|apply)$/;
    expect([...WHITELIST.keys()].filter((k) => dangerous.test(k))).toEqual([]);
  });
});
