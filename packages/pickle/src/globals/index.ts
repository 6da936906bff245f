/** The whitelist: every `module.name` the unpickler may resolve, each a pure data transform. */
import { builtinGlobals } from './builtins';
import { numpyGlobals } from './numpy';
import { pandasGlobals } from './pandas';
import { pyarrowGlobals } from './pyarrow';
import { torchGlobals } from './torch';
import type { GlobalDef, GlobalTable } from './types';

export { MODULE_ALIASES } from './builtins';

export const WHITELIST: ReadonlyMap<string, GlobalDef> = new Map(
  Object.entries({ ...builtinGlobals, ...numpyGlobals, ...pandasGlobals, ...pyarrowGlobals, ...torchGlobals } as GlobalTable),
);
