/**
 * The preference chat of SPEC §2, as both families' processors build it before their own `<image>`
 * expansion: per reference image a user turn `<image>The prompt is '{prompt}' Score for this image?`
 * and an assistant turn `+` or `-` (each pair ordered by `likedFirst[i]`), then the target's user
 * turn; rendered by the checkpoint's chat template through @huggingface/transformers (offline) and
 * read out at the single token in which the "+" and "-" answers differ.
 */
import { promises as fs } from 'fs';
import type { PreferenceExample, PreferenceImage, ReadoutTokens } from '@userpref/core';
import type * as Transformers from '@huggingface/transformers' with { 'resolution-mode': 'import' };

// transformers.js ships a CommonJS build for Node, but its typings are ESM-only under node16.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transformers = require('@huggingface/transformers') as typeof Transformers;

export type Tokenizer = Transformers.PreTrainedTokenizer;

export interface ChatMessage {
  role: 'user' | 'assistant';
  content: Array<{ type: 'image' } | { type: 'text'; text: string }>;
}

export interface PreferenceChatOptions {
  /** Put "The prompt is '{prompt}'" in the user turns (the original's `--use_prompt`). */
  readonly usePrompt: boolean;
  /**
   * Cut each prompt to its first `maxPromptLen` characters (Unicode code points, as the original
   * sliced the Python string; not tokens). `null` keeps whole prompts.
   */
  readonly maxPromptLen: number | null;
}

/** Throws unless the options are a boolean usePrompt and a non-negative integer or null maxPromptLen. */
export function checkChatOptions(options: PreferenceChatOptions, who: string): void {
  if (typeof options?.usePrompt !== 'boolean') throw new Error(`${who}: options.usePrompt must be a boolean, got ${JSON.stringify(options?.usePrompt)}`);
  const maxLen = options.maxPromptLen;
  if (maxLen !== null && (!Number.isInteger(maxLen) || maxLen < 0)) throw new Error(`${who}: options.maxPromptLen must be a non-negative integer or null, got ${maxLen}`);
}

/** The user text of one turn (SPEC §2), with the prompt cut to maxPromptLen characters. */
export function userText(prompt: string, options: PreferenceChatOptions): string {
  if (!options.usePrompt) return 'Score for this image?';
  const cut = options.maxPromptLen === null ? prompt : Array.from(prompt).slice(0, options.maxPromptLen).join('');
  return `The prompt is '${cut}' Score for this image?`;
}

/**
 * The chat of an example, its reference images in sequence order (the target's image is the last
 * `<image>`, not among them) and, per reference image, whether it is the liked one of its pair.
 */
export function preferenceChat(
  example: Pick<PreferenceExample, 'userId' | 'references' | 'likedFirst'> & { target: { prompt: string } },
  options: PreferenceChatOptions,
): { messages: ChatMessage[]; references: PreferenceImage[]; liked: boolean[] } {
  const { references, likedFirst } = example;
  if (likedFirst.length !== references.length) throw new Error(`example of user ${example.userId}: ${references.length} references but ${likedFirst.length} likedFirst flags`);
  const messages: ChatMessage[] = [];
  const images: PreferenceImage[] = [];
  const liked: boolean[] = [];
  references.forEach((ref, i) => {
    const order: Array<[PreferenceImage, string]> = likedFirst[i] ? [[ref.liked, '+'], [ref.disliked, '-']] : [[ref.disliked, '-'], [ref.liked, '+']];
    for (const [image, answer] of order) {
      messages.push({ role: 'user', content: [{ type: 'image' }, { type: 'text', text: userText(ref.prompt, options) }] });
      messages.push({ role: 'assistant', content: [{ type: 'text', text: answer }] });
      images.push(image);
      liked.push(answer === '+');
    }
  });
  messages.push({ role: 'user', content: [{ type: 'image' }, { type: 'text', text: userText(example.target.prompt, options) }] });
  return { messages, references: images, liked };
}

/** The chat template applied to `messages` (with the generation prompt, e.g. "Assistant:", when asked). */
export function renderChat(tokenizer: Tokenizer, chatTemplate: string, messages: ChatMessage[], addGenerationPrompt = false): string {
  const out = tokenizer.apply_chat_template(messages as unknown as Transformers.Message[], { chat_template: chatTemplate, add_generation_prompt: addGenerationPrompt, tokenize: false });
  if (typeof out !== 'string') throw new Error('apply_chat_template did not return a string');
  return out;
}

/**
 * The readout tokens: the tokens in which the "+" and "-" assistant turns differ. Exactly one
 * position must differ, so the model's next token after the generation prompt is a single token.
 */
export function readoutTokens(tokenizer: Tokenizer, chatTemplate: string, dir: string): ReadoutTokens {
  const turn = (answer: string) =>
    tokenizer.encode(
      renderChat(tokenizer, chatTemplate, [
        { role: 'user', content: [{ type: 'text', text: 'x' }] },
        { role: 'assistant', content: [{ type: 'text', text: answer }] },
      ]),
    );
  const plus = turn('+');
  const minus = turn('-');
  const diff = plus.map((_, i) => i).filter((i) => plus[i] !== minus[i]);
  if (plus.length !== minus.length || diff.length !== 1) throw new Error(`${dir}: the answers "+" and "-" are not single tokens in this tokenizer (${JSON.stringify(plus)} vs ${JSON.stringify(minus)})`);
  return { positive: plus[diff[0]], negative: minus[diff[0]] };
}

/** The tokenizer of a local checkpoint directory (absolute path), never from the network. */
export async function loadTokenizer(abs: string): Promise<Tokenizer> {
  const env = transformers.env;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  // An absolute path is not a Hub model id, so transformers.js reads <abs>/<file> directly.
  try {
    return await transformers.AutoTokenizer.from_pretrained(abs, { local_files_only: true });
  } catch (e) {
    throw new Error(`cannot load the tokenizer of ${abs} (tokenizer.json, tokenizer_config.json): ${(e as Error).message}`);
  }
}

/** The id of a special token that must encode as exactly one token. */
export function singleTokenId(tokenizer: Tokenizer, text: string, dir: string): number {
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  if (ids.length !== 1) throw new Error(`${dir}: tokenizer encodes '${text}' as ${ids.length} tokens, expected one special token`);
  return ids[0];
}

export async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file} is not valid JSON: ${(e as Error).message}`);
  }
}

export async function readJsonIfExists(file: string): Promise<Record<string, unknown> | null> {
  try {
    await fs.access(file);
  } catch {
    return null;
  }
  return readJson(file);
}

/**
 * The image processor's settings of a checkpoint: transformers 4 writes them to
 * preprocessor_config.json, transformers 5 nests them in processor_config.json under
 * "image_processor". Returns the object and how to name it in errors.
 */
export async function imageProcessorSettings(abs: string, processorConfig: Record<string, unknown>, processorFile: string, preprocessorFile: string): Promise<{ json: Record<string, unknown>; file: string }> {
  const preprocessor = await readJsonIfExists(preprocessorFile);
  if (preprocessor) return { json: preprocessor, file: preprocessorFile };
  const nested = processorConfig.image_processor;
  if (!(nested && typeof nested === 'object')) throw new Error(`${abs}: no image processor settings (preprocessor_config.json, or "image_processor" in processor_config.json)`);
  return { json: nested as Record<string, unknown>, file: `${processorFile} image_processor` };
}
