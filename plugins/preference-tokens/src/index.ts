/** @userpref/preference-tokens: learnable preference tokens prepended before BOS (SPEC §5). */
export { PromptTokens, PROMPT_DEFAULTS } from './prompt';
export type { PromptOptions } from './prompt';
export { PromptPoolTokens, POOL_DEFAULTS, topKIndices } from './pool';
export type { PoolOptions, KeyMode } from './pool';
export { initialValues } from './init';
export type { TokenInit, InitOptions } from './init';
export { saveTokens, readTokens, TENSORS_FILE, CONFIG_FILE, FORMAT, FORMAT_VERSION } from './storage';
export type { TokensFileConfig, StoredTokens, StoredTensor, TokensKind } from './storage';
export { readPaperPromptPool } from './torch-import';
export { userprefPlugin, contributions } from './plugin';
export { promptOptionsSchema, poolOptionsSchema } from './options';
