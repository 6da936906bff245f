/**
 * The pickle virtual machine (protocols 0-5). It interprets opcodes into plain JS values and
 * resolves GLOBAL / STACK_GLOBAL only through the whitelist in ./globals: nothing is imported or
 * executed. In inert-class mode an unknown class may still be instantiated (NEWOBJ, copyreg,
 * INST/OBJ without arguments) and given state (BUILD) as an inert PyObject record, which is how
 * pickled nn.Module objects such as `prompt_pool.PromptPool` are read; calling an unknown global
 * (REDUCE) is always refused.
 */
import { PickleError } from './errors';
import { MODULE_ALIASES, WHITELIST } from './globals';
import { isBuildable, type CallContext } from './globals/types';
import { OP, opName } from './opcodes';
import { PyGlobal, PyObject, isOrderedDict, pyInt, setOrderedDictAttributes, typeName } from './python';
import { LazyBytes, PickleFile } from './source';

export interface UnpickleOptions {
  /** Instantiate non-whitelisted classes as inert `PyObject` records instead of failing (they are
   *  never called; an unknown global used as a function is still an error). Default false. */
  inertClasses?: boolean;
  /** Resolves PERSID / BINPERSID ids (torch storages). Without it a persistent id is an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Out-of-band buffers of a protocol-5 pickle made with `buffer_callback`, in order. */
  buffers?: Uint8Array[];
}

export interface FileUnpickleOptions extends UnpickleOptions {
  /** `bytes` payloads (SHORT_BINBYTES, BINBYTES, BINBYTES8) of at least this many bytes are not read: they come
   *  out as `LazyBytes` that read them from the file on demand. Default 4096; Infinity reads all. */
  lazyBytesFrom?: number;
  /** How many bytes are read from the file at a time (default 1 MiB; a longer item is read whole). */
  windowBytes?: number;
}

export interface UnpickleResult {
  value: unknown;
  /** byte offset just past the STOP opcode (where a following pickle would start) */
  end: number;
}

const utf8 = new TextDecoder('utf-8');
const EMPTY = new Uint8Array(0);

/**
 * The input is a window `data` onto the pickle: `data[0]` is byte `base` of the pickle and `pos`
 * indexes `data`. In memory the window is the whole input (base 0). From a file, `need` slides the
 * window forward, so the pickle may be larger than anything Node can hold in one buffer. Byte
 * offsets in errors and results are always offsets in the pickle.
 */
class Unpickler implements CallContext {
  private data: Uint8Array;
  private dv: DataView;
  private base = 0;
  private pos: number;
  private readonly total: number;
  private readonly file: PickleFile | null;
  private readonly lazyFrom: number;
  private readonly windowBytes: number;
  private opStart = 0;
  private op = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private nextBuffer = 0;
  readonly inertClasses: boolean;

  constructor(
    input: Uint8Array | PickleFile,
    start: number,
    private readonly options: FileUnpickleOptions,
  ) {
    this.inertClasses = options.inertClasses === true;
    this.lazyFrom = options.lazyBytesFrom ?? 4096;
    this.windowBytes = Math.max(1, options.windowBytes ?? 1 << 20);
    if (input instanceof PickleFile) {
      this.file = input;
      this.total = input.size;
      this.data = EMPTY;
      this.base = start;
      this.pos = 0;
    } else {
      this.file = null;
      this.total = input.length;
      this.data = input;
      this.pos = start;
    }
    this.dv = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
  }

  // ---------------------------------------------------------------- reading

  private fail(message: string): never {
    throw new PickleError(message, this.opStart);
  }

  /** Offset in the pickle of the next byte. */
  private get offset(): number {
    return this.base + this.pos;
  }

  private need(n: number): void {
    if (this.pos + n <= this.data.length) return;
    if (this.offset + n > this.total) {
      this.fail(`unexpected end of pickle at byte ${this.total}: ${opName(this.op)} at byte ${this.opStart} needs ${this.offset + n - this.total} more byte(s)`);
    }
    this.fill(n);
  }

  /** Read the window anew from the current offset, at least `n` bytes (file input only: in memory
   *  the window already ends where the input does). */
  private fill(n: number): void {
    const at = this.offset;
    this.data = (this.file as PickleFile).readAt(at, Math.min(this.total - at, Math.max(n, this.windowBytes)));
    this.dv = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    this.base = at;
    this.pos = 0;
  }

  private u8(): number {
    this.need(1);
    return this.data[this.pos++];
  }

  private u16(): number {
    this.need(2);
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  private i32(): number {
    this.need(4);
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private u64(): number {
    this.need(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${opName(this.op)} length ${v} is too large`);
    return Number(v);
  }

  /** The next `n` bytes: a view into the input in memory, a copy from a file (the window moves on). */
  private take(n: number): Uint8Array {
    this.need(n);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return this.file ? out.slice() : out;
  }

  /** A `bytes` payload: from a file, a large one stays there as LazyBytes and is skipped. */
  private bytes(n: number): Uint8Array | LazyBytes {
    if (!this.file || n < this.lazyFrom) return this.take(n);
    const at = this.offset;
    if (at + n > this.total) this.fail(`unexpected end of pickle at byte ${this.total}: ${opName(this.op)} at byte ${this.opStart} announces ${n} bytes, ${this.total - at} remain`);
    this.pos += n;
    if (this.pos > this.data.length) {
      this.base += this.pos;
      this.pos = 0;
      this.data = EMPTY;
    }
    return new LazyBytes(this.file, at, n);
  }

  private text(n: number): string {
    this.need(n);
    const d = this.data;
    const start = this.pos;
    this.pos += n;
    if (n < 48) {
      let s = '';
      for (let i = start; i < start + n; i++) {
        const c = d[i];
        if (c >= 0x80) return utf8.decode(d.subarray(start, start + n));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8.decode(d.subarray(start, start + n));
  }

  private latin1(b: Uint8Array): string {
    let s = '';
    for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return s;
  }

  /** Index in the window of the next newline, growing the window from a file until it holds one. */
  private lineEnd(): number {
    let nl = this.data.indexOf(0x0a, this.pos);
    while (nl < 0 && this.file && this.base + this.data.length < this.total) {
      this.fill(this.data.length - this.pos + this.windowBytes);
      nl = this.data.indexOf(0x0a, this.pos);
    }
    if (nl < 0) this.fail(`unexpected end of pickle at byte ${this.total}: ${opName(this.op)} at byte ${this.opStart} has no end of line`);
    return nl;
  }

  /** A protocol-0 argument line, without its newline. */
  private line(): string {
    const nl = this.lineEnd();
    const s = utf8.decode(this.data.subarray(this.pos, nl));
    this.pos = nl + 1;
    return s.endsWith('\r') ? s.slice(0, -1) : s;
  }

  // ---------------------------------------------------------------- stack

  private pop(): unknown {
    if (this.stack.length === 0) this.fail(`stack underflow at ${opName(this.op)} (byte ${this.opStart})`);
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) this.fail(`stack underflow at ${opName(this.op)} (byte ${this.opStart})`);
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (prev === undefined) this.fail(`${opName(this.op)} at byte ${this.opStart} needs a MARK but there is none`);
    this.stack = prev;
    return items;
  }

  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`memo key ${i} is not defined (${opName(this.op)} at byte ${this.opStart})`);
    return this.memo.get(i);
  }

  // ---------------------------------------------------------------- objects

  private resolveGlobal(moduleIn: string, name: string): unknown {
    const module = MODULE_ALIASES[moduleIn] ?? moduleIn;
    const path = `${module}.${name}`;
    const def = WHITELIST.get(path);
    if (def) return def.kind === 'constant' ? def.constant : new PyGlobal(module, name, def);
    if (this.inertClasses) return new PyGlobal(module, name, undefined);
    this.fail(
      `global ${path} is not whitelisted (${opName(this.op)} at byte ${this.opStart}): this reader only rebuilds known builtins/numpy/pandas/torch objects and never imports or calls anything else`,
    );
  }

  call(fn: unknown, args: unknown[]): unknown {
    if (!(fn instanceof PyGlobal)) this.fail(`cannot call ${typeName(fn)} (${opName(this.op)} at byte ${this.opStart}): only whitelisted globals are ever called`);
    if (!fn.def) {
      this.fail(
        `refusing to call ${fn.path} (${opName(this.op)} at byte ${this.opStart}): it is not whitelisted; unknown classes may only be instantiated as inert records, never called`,
      );
    }
    const def = fn.def;
    if (!def.call) this.fail(`${fn.path} cannot be called (${opName(this.op)} at byte ${this.opStart})`);
    if (!Array.isArray(args)) this.fail(`arguments of ${fn.path} must be a tuple, got ${typeName(args)}`);
    return this.guard(fn.path, () => def.call!(args, this, fn));
  }

  instantiate(cls: unknown, args: unknown[], kwargs?: Map<unknown, unknown>): unknown {
    if (!(cls instanceof PyGlobal)) this.fail(`cannot instantiate ${typeName(cls)} (${opName(this.op)} at byte ${this.opStart})`);
    if (!Array.isArray(args)) this.fail(`arguments of ${cls.path} must be a tuple, got ${typeName(args)}`);
    if (!cls.def) return new PyObject(cls.path, args, kwargs, true);
    const def = cls.def;
    if (!def.newObject) this.fail(`${cls.path} cannot be instantiated by ${opName(this.op)} (byte ${this.opStart})`);
    return this.guard(cls.path, () => def.newObject!(args, this, cls, kwargs));
  }

  /** INST / OBJ: Python calls cls(*args) when there are arguments, else cls.__new__(cls). */
  private instOrCall(cls: unknown, args: unknown[]): unknown {
    return args.length === 0 ? this.instantiate(cls, args) : this.call(cls, args);
  }

  private build(obj: unknown, state: unknown): void {
    if (isBuildable(obj)) {
      this.guard(`BUILD of ${typeName(obj)}`, () => obj.setState(state));
      return;
    }
    // An OrderedDict has an instance dict (a torch state_dict() carries `_metadata` there): BUILD
    // stores the state's entries as its attributes, data only. A plain dict has none, as in Python.
    if (isOrderedDict(obj)) {
      this.guard('BUILD of collections.OrderedDict', () => setOrderedDictAttributes(obj, state));
      return;
    }
    if (state === null || (state instanceof Map && state.size === 0)) return;
    const why = obj instanceof Map ? ': a plain dict has no attributes (only an OrderedDict takes them)' : '';
    this.fail(`BUILD on ${typeName(obj)} is not supported${why} (byte ${this.opStart})`);
  }

  private guard<T>(what: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (e instanceof PickleError) throw e;
      throw new PickleError(`${what}: ${(e as Error).message} (${opName(this.op)} at byte ${this.opStart})`, this.opStart);
    }
  }

  private persistent(pid: unknown): unknown {
    const load = this.options.persistentLoad;
    if (!load) this.fail(`pickle refers to a persistent id (${typeName(pid)}) at byte ${this.opStart} but no persistentLoad was given (torch files: use loadTorchFile)`);
    return this.guard('persistent_load', () => load(pid));
  }

  private setItem(d: unknown, k: unknown, v: unknown): void {
    if (d instanceof Map) d.set(k, v);
    else this.fail(`SETITEM on ${typeName(d)} is not supported (byte ${this.opStart})`);
  }

  // ---------------------------------------------------------------- values

  private long(bytes: Uint8Array): number | bigint {
    const n = bytes.length;
    if (n === 0) return 0;
    if (n <= 6) {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + bytes[i];
      return bytes[n - 1] & 0x80 ? v - 2 ** (8 * n) : v;
    }
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
    if (bytes[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    return pyInt(v);
  }

  private textInt(s: string): number | bigint | boolean {
    if (s === '01') return true;
    if (s === '00') return false;
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[+-]?\d+$/.test(t)) this.fail(`bad integer literal '${s}' at byte ${this.opStart}`);
    return pyInt(BigInt(t));
  }

  private textFloat(s: string): number {
    const t = s.trim().toLowerCase();
    if (t === 'inf' || t === '+inf') return Infinity;
    if (t === '-inf') return -Infinity;
    if (t === 'nan' || t === '-nan') return NaN;
    const v = Number(t);
    if (Number.isNaN(v)) this.fail(`bad float literal '${s}' at byte ${this.opStart}`);
    return v;
  }

  /** Python 2 str repr ('...' or "...") as a latin-1 string. */
  private pyStringRepr(s: string): string {
    const q = s[0];
    if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) this.fail(`STRING argument is not a quoted string at byte ${this.opStart}`);
    const body = s.slice(1, -1);
    let out = '';
    for (let i = 0; i < body.length; i++) {
      const c = body[i];
      if (c !== '\\' || i === body.length - 1) {
        out += c;
        continue;
      }
      const e = body[++i];
      const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', "'": "'", '"': '"' };
      if (e in simple) out += simple[e];
      else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
        out += String.fromCharCode(parseInt(body.slice(i + 1, i + 3), 16));
        i += 2;
      } else if (e >= '0' && e <= '7') {
        let oct = e;
        while (oct.length < 3 && body[i + 1] >= '0' && body[i + 1] <= '7') oct += body[++i];
        out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      } else out += '\\' + e;
    }
    return out;
  }

  /** raw-unicode-escape (protocol 0 UNICODE): latin-1 bytes with \uXXXX / \UXXXXXXXX escapes. */
  private rawUnicodeEscape(bytes: Uint8Array): string {
    return this.latin1(bytes).replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u4?: string, u8?: string) =>
      String.fromCodePoint(parseInt((u4 ?? u8) as string, 16)),
    );
  }

  // ---------------------------------------------------------------- main loop

  run(): UnpickleResult {
    try {
      return this.loop();
    } catch (e) {
      if (e instanceof PickleError) throw e;
      throw new PickleError(`${(e as Error).message} (${opName(this.op)} at byte ${this.opStart})`, this.opStart);
    }
  }

  private loop(): UnpickleResult {
    for (;;) {
      this.opStart = this.offset;
      if (this.pos >= this.data.length) {
        if (this.offset >= this.total) this.fail(`unexpected end of pickle at byte ${this.total}: no STOP opcode`);
        this.fill(1);
      }
      const op = (this.op = this.data[this.pos++]);
      switch (op) {
        case OP.PROTO: {
          const p = this.u8();
          if (p > 5) this.fail(`unsupported pickle protocol ${p}`);
          break;
        }
        case OP.FRAME: {
          const n = this.u64();
          if (this.offset + n > this.total) {
            this.fail(`unexpected end of pickle at byte ${this.total}: FRAME at byte ${this.opStart} announces ${n} bytes, ${this.total - this.offset} remain`);
          }
          break;
        }
        case OP.STOP:
          return { value: this.pop(), end: this.offset };

        // ---- marks and stack
        case OP.MARK:
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          if (this.stack.length > 0) this.stack.pop();
          else this.popMark();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.DUP:
          this.stack.push(this.top());
          break;

        // ---- memo
        case OP.MEMOIZE:
          this.memo.set(this.memo.size, this.top());
          break;
        case OP.BINPUT:
          this.memo.set(this.u8(), this.top());
          break;
        case OP.LONG_BINPUT:
          this.memo.set(this.u32(), this.top());
          break;
        case OP.PUT:
          this.memo.set(Number(this.textInt(this.line())), this.top());
          break;
        case OP.BINGET:
          this.stack.push(this.memoGet(this.u8()));
          break;
        case OP.LONG_BINGET:
          this.stack.push(this.memoGet(this.u32()));
          break;
        case OP.GET:
          this.stack.push(this.memoGet(Number(this.textInt(this.line()))));
          break;

        // ---- scalars
        case OP.NONE:
          this.stack.push(null);
          break;
        case OP.NEWTRUE:
          this.stack.push(true);
          break;
        case OP.NEWFALSE:
          this.stack.push(false);
          break;
        case OP.BININT:
          this.stack.push(this.i32());
          break;
        case OP.BININT1:
          this.stack.push(this.u8());
          break;
        case OP.BININT2:
          this.stack.push(this.u16());
          break;
        case OP.LONG1:
          this.stack.push(this.long(this.take(this.u8())));
          break;
        case OP.LONG4: {
          const n = this.i32();
          if (n < 0) this.fail(`LONG4 with negative length ${n}`);
          this.stack.push(this.long(this.take(n)));
          break;
        }
        case OP.INT:
        case OP.LONG:
          this.stack.push(this.textInt(this.line()));
          break;
        case OP.BINFLOAT: {
          this.need(8);
          this.stack.push(this.dv.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }
        case OP.FLOAT:
          this.stack.push(this.textFloat(this.line()));
          break;

        // ---- strings and bytes
        case OP.SHORT_BINUNICODE:
          this.stack.push(this.text(this.u8()));
          break;
        case OP.BINUNICODE:
          this.stack.push(this.text(this.u32()));
          break;
        case OP.BINUNICODE8:
          this.stack.push(this.text(this.u64()));
          break;
        case OP.UNICODE: {
          const nl = this.lineEnd();
          this.stack.push(this.rawUnicodeEscape(this.data.subarray(this.pos, nl)));
          this.pos = nl + 1;
          break;
        }
        case OP.STRING:
          this.stack.push(this.pyStringRepr(this.line()));
          break;
        case OP.BINSTRING: {
          const n = this.i32();
          if (n < 0) this.fail(`BINSTRING with negative length ${n}`);
          this.stack.push(this.latin1(this.take(n)));
          break;
        }
        case OP.SHORT_BINSTRING:
          this.stack.push(this.latin1(this.take(this.u8())));
          break;
        case OP.SHORT_BINBYTES:
          this.stack.push(this.bytes(this.u8()));
          break;
        case OP.BINBYTES:
          this.stack.push(this.bytes(this.u32()));
          break;
        case OP.BINBYTES8:
          this.stack.push(this.bytes(this.u64()));
          break;
        case OP.BYTEARRAY8: {
          // A bytearray is mutable in Python: never a view into the input (a file read is a copy).
          const b = this.take(this.u64());
          this.stack.push(this.file ? b : b.slice());
          break;
        }
        case OP.NEXT_BUFFER: {
          const buffers = this.options.buffers ?? [];
          const i = this.nextBuffer++;
          if (i >= buffers.length) {
            this.fail(
              `pickle needs out-of-band buffer #${i} (NEXT_BUFFER at byte ${this.opStart}) but ${buffers.length} were given: it was written with a protocol-5 buffer_callback; pass those buffers in options.buffers`,
            );
          }
          this.stack.push(buffers[i]);
          break;
        }
        case OP.READONLY_BUFFER:
          this.top();
          break;

        // ---- containers
        case OP.EMPTY_TUPLE:
          this.stack.push([]);
          break;
        case OP.TUPLE1:
          this.stack.push([this.pop()]);
          break;
        case OP.TUPLE2: {
          const b = this.pop();
          const a = this.pop();
          this.stack.push([a, b]);
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.stack.push([a, b, c]);
          break;
        }
        case OP.TUPLE:
        case OP.LIST: {
          const items = this.popMark(); // before touching this.stack: popMark replaces it
          this.stack.push(items);
          break;
        }
        case OP.EMPTY_LIST:
          this.stack.push([]);
          break;
        case OP.APPEND: {
          const v = this.pop();
          const list = this.top();
          if (!Array.isArray(list)) this.fail(`APPEND to ${typeName(list)} is not supported (byte ${this.opStart})`);
          list.push(v);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          const list = this.top();
          if (!Array.isArray(list)) this.fail(`APPENDS to ${typeName(list)} is not supported (byte ${this.opStart})`);
          for (let i = 0; i < items.length; i++) list.push(items[i]);
          break;
        }
        case OP.EMPTY_DICT:
          this.stack.push(new Map());
          break;
        case OP.DICT: {
          const items = this.popMark();
          const m = new Map<unknown, unknown>();
          for (let i = 0; i + 1 < items.length; i += 2) m.set(items[i], items[i + 1]);
          this.stack.push(m);
          break;
        }
        case OP.SETITEM: {
          const v = this.pop();
          const k = this.pop();
          this.setItem(this.top(), k, v);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          const target = this.top();
          for (let i = 0; i + 1 < items.length; i += 2) this.setItem(target, items[i], items[i + 1]);
          break;
        }
        case OP.EMPTY_SET:
          this.stack.push(new Set());
          break;
        case OP.ADDITEMS: {
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof Set)) this.fail(`ADDITEMS to ${typeName(set)} is not supported (byte ${this.opStart})`);
          for (const v of items) set.add(v);
          break;
        }
        case OP.FROZENSET: {
          const items = this.popMark();
          this.stack.push(new Set(items));
          break;
        }

        // ---- globals and objects
        case OP.GLOBAL: {
          const module = this.line();
          const name = this.line();
          this.stack.push(this.resolveGlobal(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail(`STACK_GLOBAL needs two strings, got ${typeName(module)} and ${typeName(name)}`);
          this.stack.push(this.resolveGlobal(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop();
          const fn = this.pop();
          this.stack.push(this.call(fn, args as unknown[]));
          break;
        }
        case OP.NEWOBJ: {
          const args = this.pop();
          const cls = this.pop();
          this.stack.push(this.instantiate(cls, args as unknown[]));
          break;
        }
        case OP.NEWOBJ_EX: {
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          this.stack.push(this.instantiate(cls, args as unknown[], kwargs instanceof Map ? kwargs : undefined));
          break;
        }
        case OP.INST: {
          const module = this.line();
          const name = this.line();
          const args = this.popMark();
          this.stack.push(this.instOrCall(this.resolveGlobal(module, name), args));
          break;
        }
        case OP.OBJ: {
          const items = this.popMark();
          if (items.length === 0) this.fail(`OBJ without a class (byte ${this.opStart})`);
          this.stack.push(this.instOrCall(items[0], items.slice(1)));
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case OP.PERSID:
          this.stack.push(this.persistent(this.line()));
          break;
        case OP.BINPERSID:
          this.stack.push(this.persistent(this.pop()));
          break;
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4:
          this.fail(`unsupported pickle opcode ${opName(op)} at byte ${this.opStart}: the copyreg extension registry is not supported`);
        default:
          this.fail(`unknown pickle opcode ${opName(op)} at byte ${this.opStart}`);
      }
    }
  }
}

/** Unpickle one pickle starting at `offset`; returns the value and where the pickle ended. */
export function unpickleAt(bytes: Uint8Array, offset: number, options: UnpickleOptions = {}): UnpickleResult {
  return new Unpickler(bytes, offset, options).run();
}

/** Unpickle `bytes` without executing anything (see UnpickleOptions). Bytes after STOP are ignored,
 *  as Python's pickle.loads does. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): unknown {
  return unpickleAt(bytes, 0, options).value;
}

/** Unpickle an open file of any size, reading it a window at a time; large `bytes` payloads come
 *  out as LazyBytes, readable while the file stays open (see FileUnpickleOptions). */
export function unpickleFile(file: PickleFile, options: FileUnpickleOptions = {}): unknown {
  return new Unpickler(file, 0, options).run().value;
}
