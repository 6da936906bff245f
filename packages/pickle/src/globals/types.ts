/**
 * The whitelist contract. Each allowed `module.name` maps to a GlobalDef: a pure TypeScript data
 * transform standing in for what Python would call. A global without a def is never called.
 */
import type { PyGlobal } from '../python';

export interface CallContext {
  /** Instantiate a class without running its __init__ (NEWOBJ semantics): whitelisted classes use
   *  their `newObject`, unknown classes become inert PyObject records (inert-class mode only). */
  instantiate(cls: unknown, args: unknown[], kwargs?: Map<unknown, unknown>): unknown;
  /** Call a whitelisted global (REDUCE semantics); refuses unknown ones. */
  call(fn: unknown, args: unknown[]): unknown;
  readonly inertClasses: boolean;
}

export interface GlobalDef {
  /** 'function': may only be called; 'class': may be called and/or instantiated; 'constant': the
   *  global is a value (pandas.NA, torch.float32, a storage type) and is pushed as `constant`. */
  kind: 'function' | 'class' | 'constant';
  /** REDUCE / INST / OBJ: `global(*args)`. */
  call?(args: unknown[], ctx: CallContext, self: PyGlobal): unknown;
  /** NEWOBJ / copyreg: `cls.__new__(cls, *args)`; BUILD then applies the state. */
  newObject?(args: unknown[], ctx: CallContext, self: PyGlobal, kwargs?: Map<unknown, unknown>): unknown;
  constant?: unknown;
}

/** Objects that accept a BUILD state (Python's __setstate__). */
export interface Buildable {
  setState(state: unknown): void;
}

export function isBuildable(v: unknown): v is Buildable {
  return v !== null && typeof v === 'object' && typeof (v as Buildable).setState === 'function';
}

export type GlobalTable = Record<string, GlobalDef>;
