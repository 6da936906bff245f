/**
 * Builds the Idefics3 / SmolVLM model inputs of SPEC §2 from a PreferenceExample the way
 * transformers' Idefics3Processor (and SmolVLMProcessor, identical for images) does:
 * apply_chat_template with the checkpoint's template, each `<image>` replaced by its tile layout,
 * then the checkpoint's tokenizer (loaded offline through @huggingface/transformers).
 *
 * The chat is @userpref/mllm's preferenceChat, the IDEFICS2 backbone's too (SPEC §2): per reference image a user turn
 * `<image>The prompt is '{prompt}' Score for this image?` and an assistant turn `+` or `-`; the
 * target's user turn last, ending with the generation prompt `Assistant:`. What the template adds
 * around it is the checkpoint's (SmolVLM's starts with `<|im_start|>`).
 *
 * `<image>` of an image split into rows x cols tiles becomes, row by row,
 * `<fake_token_around_image><row_r_col_c>` + imageSeqLen x `<image>` for each tile, "\n" after each
 * row, then "\n<fake_token_around_image><global-img>" + imageSeqLen x `<image>` +
 * `<fake_token_around_image>`; an unsplit image is just the global part without the leading "\n".
 * Unlike Idefics2Processor, no space is inserted after the closing `<fake_token_around_image>`.
 *
 * The liked- and the disliked-target sequences share every token before the target's expansion;
 * the expansion (and so the target turn) depends on the candidate's tile layout, so a layout is
 * part of each encoding.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { PreferenceExample, PreferenceImage, ReadoutTokens } from '@userpref/core';
import {
  checkChatOptions,
  imageProcessorSettings,
  loadTokenizer,
  preferenceChat,
  readJsonIfExists,
  readoutTokens,
  renderChat,
  singleTokenId,
  userText,
  type ChatMessage,
  type PreferenceChatOptions,
  type Tokenizer,
} from '@userpref/mllm';
import { parseIdefics3ImageConfig, type Idefics3ImageConfig } from './image';

export interface Idefics3ProcessorOptions extends PreferenceChatOptions {
  /** Overrides the checkpoint's do_image_splitting (null keeps it). */
  readonly imageSplitting?: boolean | null;
}

export interface TileLayout {
  readonly rows: number;
  readonly cols: number;
}

export interface Idefics3SpecialTokens {
  readonly image: number;
  readonly fakeImage: number;
  readonly globalImage: number;
  readonly endOfUtterance: number;
  readonly pad: number;
}

export interface Idefics3Encoding {
  readonly inputIds: Int32Array;
  /** Index of the first token of the target image's expansion (its first <fake_token_around_image>). */
  readonly targetStart: number;
}

export const IMAGE_TOKEN = '<image>';
export const FAKE_IMAGE_TOKEN = '<fake_token_around_image>';
export const GLOBAL_IMAGE_TOKEN = '<global-img>';
export const END_OF_UTTERANCE = '<end_of_utterance>';

export class Idefics3Processor {
  private constructor(
    readonly dir: string,
    private readonly tokenizer: Tokenizer,
    private readonly chatTemplate: string,
    readonly imageConfig: Idefics3ImageConfig,
    readonly imageSeqLen: number,
    readonly tokens: Idefics3SpecialTokens,
    readonly readout: ReadoutTokens,
    readonly options: Idefics3ProcessorOptions,
  ) {}

  /**
   * Tokenizer, chat template (processor_config.json, chat_template.jinja, else the tokenizer's),
   * image_seq_len and image processor settings (processor_config.json "image_processor" or
   * preprocessor_config.json) of a local checkpoint; `expectedSeqLen` is the model's tokens per tile.
   */
  static async fromPretrained(dir: string, options: Idefics3ProcessorOptions, expected: { imageSeqLen: number; tileSize: number; imageTokenId: number }): Promise<Idefics3Processor> {
    checkChatOptions(options, 'Idefics3Processor');
    const abs = path.resolve(dir);
    const processorFile = path.join(abs, 'processor_config.json');
    const processorConfig = (await readJsonIfExists(processorFile)) ?? {};
    const settings = await imageProcessorSettings(abs, processorConfig, processorFile, path.join(abs, 'preprocessor_config.json'));
    let imageConfig = parseIdefics3ImageConfig(settings.json, settings.file);
    if (options.imageSplitting !== undefined && options.imageSplitting !== null) imageConfig = { ...imageConfig, doImageSplitting: options.imageSplitting };
    if (imageConfig.tileSize !== expected.tileSize) {
      throw new Error(`${abs}: the image processor's max_image_size ${imageConfig.tileSize} differs from vision_config.image_size ${expected.tileSize}; tiles must fill the vision tower's position grid`);
    }
    const seqLen = processorConfig.image_seq_len ?? expected.imageSeqLen;
    if (seqLen !== expected.imageSeqLen) throw new Error(`${abs}: processor_config.json image_seq_len ${seqLen} differs from the model's ${expected.imageSeqLen} tokens per tile ((image_size / patch_size)^2 / scale_factor^2)`);

    const tokenizer = await loadTokenizer(abs);
    let chatTemplate: unknown = processorConfig.chat_template;
    if (chatTemplate === undefined || chatTemplate === null) {
      try {
        chatTemplate = await fs.readFile(path.join(abs, 'chat_template.jinja'), 'utf8');
      } catch {
        chatTemplate = tokenizer.chat_template;
      }
    }
    if (typeof chatTemplate !== 'string') throw new Error(`${abs}: no chat template (processor_config.json, chat_template.jinja or tokenizer_config.json)`);

    const single = (text: string): number => singleTokenId(tokenizer, text, abs);
    const tokens: Idefics3SpecialTokens = {
      image: single(IMAGE_TOKEN),
      fakeImage: single(FAKE_IMAGE_TOKEN),
      globalImage: single(GLOBAL_IMAGE_TOKEN),
      endOfUtterance: single(END_OF_UTTERANCE),
      pad: tokenizer.pad_token_id,
    };
    for (const [k, v] of Object.entries(tokens)) if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${abs}: the tokenizer defines no ${k} token`);
    if (tokens.image !== expected.imageTokenId) throw new Error(`${abs}: config.json image_token_id ${expected.imageTokenId} is not the tokenizer's '<image>' id ${tokens.image}`);
    return new Idefics3Processor(abs, tokenizer, chatTemplate, imageConfig, seqLen as number, tokens, readoutTokens(tokenizer, chatTemplate, abs), options);
  }

  userText(prompt: string): string {
    return userText(prompt, this.options);
  }

  /** The chat of an example and its reference images in sequence order (the target is not among them). */
  messages(example: Pick<PreferenceExample, 'userId' | 'references' | 'likedFirst'> & { target: { prompt: string } }): { messages: ChatMessage[]; references: PreferenceImage[]; liked: boolean[] } {
    return preferenceChat(example, this.options);
  }

  /** `<image>` tokens of an image with this tile layout: each tile's and the global image's. */
  imageTokenCount(layout: TileLayout): number {
    return (layout.rows * layout.cols + 1) * this.imageSeqLen;
  }

  renderChat(messages: ChatMessage[], addGenerationPrompt = false): string {
    return renderChat(this.tokenizer, this.chatTemplate, messages, addGenerationPrompt);
  }

  /** The text an image's `<image>` becomes (Idefics3Processor.replace_image_token). */
  expansion(layout: TileLayout): string {
    const run = IMAGE_TOKEN.repeat(this.imageSeqLen);
    const global = `${FAKE_IMAGE_TOKEN}${GLOBAL_IMAGE_TOKEN}${run}${FAKE_IMAGE_TOKEN}`;
    if (layout.rows === 0 && layout.cols === 0) return global;
    let text = '';
    for (let r = 1; r <= layout.rows; r++) {
      for (let c = 1; c <= layout.cols; c++) text += `${FAKE_IMAGE_TOKEN}<row_${r}_col_${c}>${run}`;
      text += '\n';
    }
    return `${text}\n${global}`;
  }

  /** `text` with its `<image>` placeholders replaced, in order, by the expansions of `layouts`. */
  expandImages(text: string, layouts: readonly TileLayout[]): string {
    const parts = text.split(IMAGE_TOKEN);
    if (parts.length - 1 !== layouts.length) throw new Error(`the text has ${parts.length - 1} <image> placeholders for ${layouts.length} images`);
    return parts.map((p, i) => (i === 0 ? p : this.expansion(layouts[i - 1]) + p)).join('');
  }

  /** Token ids of a full text (BOS as the tokenizer adds it). */
  encodeText(text: string): Int32Array {
    return Int32Array.from(this.tokenizer.encode(text));
  }

  /**
   * Token ids of an example's sequence with the given tile layouts (references in sequence order,
   * then the target), and where the target's expansion starts.
   */
  encode(chat: ChatMessage[], layouts: readonly TileLayout[]): Idefics3Encoding {
    const ids = this.encodeText(this.expandImages(this.renderChat(chat, true), layouts));
    // The target's user turn is the last one: it follows the last reference's assistant turn, so
    // it starts after the second-to-last <end_of_utterance> (the last one closes the turn itself).
    let start = 0;
    let seen = 0;
    for (let t = ids.length - 1; t >= 0; t--) {
      if (ids[t] === this.tokens.endOfUtterance && ++seen === 2) {
        start = t + 1;
        break;
      }
    }
    while (start < ids.length && ids[start] !== this.tokens.fakeImage) start++;
    if (start >= ids.length) throw new Error('the encoded sequence has no target image');
    const images = ids.reduce((n, id) => n + (id === this.tokens.image ? 1 : 0), 0);
    const expected = layouts.reduce((n, l) => n + this.imageTokenCount(l), 0);
    if (images !== expected) throw new Error(`the sequence has ${images} <image> tokens; its ${layouts.length} images need ${expected}`);
    return { inputIds: ids, targetStart: start };
  }

  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: false });
  }
}
