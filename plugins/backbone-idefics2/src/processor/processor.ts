/**
 * Builds the IDEFICS2 model inputs of SPEC §2 from a PreferenceExample, the way transformers'
 * Idefics2Processor does (apply_chat_template, then `<image>` expansion, then the tokenizer), with
 * the tokenizer and the chat template of the checkpoint loaded offline through
 * @huggingface/transformers and the image steps of ./image.ts. The chat itself (SPEC §2) and its
 * readout tokens are @userpref/mllm's, shared with Idefics3.
 *
 * Sequence of one example (references in order, each pair ordered by `likedFirst[i]`):
 *
 *   <s>User:<image>The prompt is '{prompt}' Score for this image?<end_of_utterance>\n
 *   Assistant: +<end_of_utterance>\n          ("-" after a disliked image)
 *   ... (2 turns per reference image) ...
 *   User:<image>The prompt is '{target prompt}' Score for this image?<end_of_utterance>\n
 *   Assistant:
 *
 * Without prompts the user text is just "Score for this image?". `<image>` becomes
 * `<fake_token_around_image>` + imageSeqLen x `<image>` + `<fake_token_around_image>`, and like
 * transformers >= 4.5x's Idefics2Processor a space is inserted between the closing
 * `<fake_token_around_image>` and text glued to it ("...<fake_token_around_image> The prompt"), so the
 * first word keeps its word-start token. The original code used older transformers without that
 * space and had a trailing-space difference between its train and eval prompts (SPEC §8); here one
 * template serves both, which is why encodeExample takes no train/eval switch.
 *
 * The liked-target and the disliked-target sequences of an example have identical token ids: only
 * the pixels of the target image differ. One encoding serves both (the last image slot is the
 * target); the model runs it with either candidate's pixels.
 */
import { promises as fs } from 'fs';
import * as path from 'path';
import type { PreferenceExample, PreferenceImage, ReadoutTokens, RgbImage } from '@userpref/core';
import {
  checkChatOptions,
  imageProcessorSettings,
  loadTokenizer,
  preferenceChat,
  readJson,
  readJsonIfExists,
  readoutTokens,
  renderChat,
  singleTokenId,
  userText,
  type ChatMessage,
  type PreferenceChatOptions,
  type Tokenizer,
} from '@userpref/mllm';
import { parseImageProcessorConfig, processImages, type ImageProcessorConfig, type PixelBatch } from './image';

export type { ChatMessage } from '@userpref/mllm';

/** usePrompt and maxPromptLen (@userpref/mllm's PreferenceChatOptions). */
export type Idefics2ProcessorOptions = PreferenceChatOptions;

/** Ids of the tokens the model code needs, all read from the tokenizer. */
export interface Idefics2SpecialTokens {
  readonly image: number;
  readonly fakeImage: number;
  readonly endOfUtterance: number;
  readonly bos: number;
  readonly eos: number;
  readonly pad: number;
}

export interface ImageSlot {
  /** Index in inputIds of the first of the imageSeqLen `<image>` tokens of this image. */
  readonly start: number;
  /** The reference image shown there, or 'target' for the candidate (always the last slot). */
  readonly image: PreferenceImage | 'target';
}

export interface ExampleEncoding {
  readonly inputIds: Int32Array;
  /** One slot per image, in sequence order; the target slot is last. */
  readonly imageSlots: readonly ImageSlot[];
  /** Per reference slot (all but the target's): is it the liked image of its pair? */
  readonly referenceLiked: readonly boolean[];
}

/** A right-padded batch: row b holds its real tokens at [0, lengths[b]) and pad ids after. */
export interface CollatedBatch {
  readonly batchSize: number;
  readonly seqLen: number;
  /** int32 [batchSize, seqLen], row-major. */
  readonly inputIds: Int32Array;
  /** int32 [batchSize, seqLen]: 1 for real tokens, 0 for padding. */
  readonly attentionMask: Int32Array;
  readonly lengths: Int32Array;
  /** Index of the last real token of each row (= lengths - 1): where the readout logits are. */
  readonly lastIndex: Int32Array;
}

const IMAGE_TOKEN = '<image>';
const FAKE_IMAGE_TOKEN = '<fake_token_around_image>';
const END_OF_UTTERANCE = '<end_of_utterance>';

export class Idefics2Processor {
  private constructor(
    readonly dir: string,
    private readonly tokenizer: Tokenizer,
    private readonly chatTemplate: string,
    readonly imageConfig: ImageProcessorConfig,
    /** `<image>` tokens per image (perceiver_config.resampler_n_latents). */
    readonly imageSeqLen: number,
    readonly tokens: Idefics2SpecialTokens,
    /** Ids of "+" and "-" as the assistant turns contain them (and the model should emit them). */
    readonly readout: ReadoutTokens,
    readonly options: Idefics2ProcessorOptions,
  ) {}

  /**
   * Loads the tokenizer (tokenizer.json / tokenizer_config.json), the chat template
   * (processor_config.json, else tokenizer_config.json), image_seq_len and the image processor
   * settings from a local checkpoint directory. Never touches the network.
   */
  static async fromPretrained(dir: string, options: Idefics2ProcessorOptions): Promise<Idefics2Processor> {
    checkChatOptions(options, 'Idefics2Processor');
    const abs = path.resolve(dir);
    const config = await readJson(path.join(abs, 'config.json'));
    const processorFile = path.join(abs, 'processor_config.json');
    const processorConfig = (await readJsonIfExists(processorFile)) ?? {};
    const settings = await imageProcessorSettings(abs, processorConfig, processorFile, path.join(abs, 'preprocessor_config.json'));
    const imageConfig = parseImageProcessorConfig(settings.json, settings.file);

    const perceiver = config.perceiver_config as { resampler_n_latents?: unknown } | undefined;
    const latents = perceiver?.resampler_n_latents;
    if (typeof latents !== 'number') throw new Error(`${abs}/config.json: perceiver_config.resampler_n_latents is missing`);
    const seqLen = processorConfig.image_seq_len ?? latents;
    if (seqLen !== latents) {
      throw new Error(`${abs}: processor_config.json image_seq_len ${seqLen} differs from config.json perceiver_config.resampler_n_latents ${latents}`);
    }

    const tokenizer = await loadTokenizer(abs);
    let chatTemplate = processorConfig.chat_template ?? tokenizer.chat_template;
    if (chatTemplate === undefined || chatTemplate === null) {
      try {
        chatTemplate = await fs.readFile(path.join(abs, 'chat_template.jinja'), 'utf8');
      } catch {
        throw new Error(`${abs}: no chat template (processor_config.json, tokenizer_config.json or chat_template.jinja)`);
      }
    }
    if (typeof chatTemplate !== 'string') throw new Error(`${abs}: the chat template must be a string`);

    const single = (text: string): number => singleTokenId(tokenizer, text, abs);
    const tokens: Idefics2SpecialTokens = {
      image: single(IMAGE_TOKEN),
      fakeImage: single(FAKE_IMAGE_TOKEN),
      endOfUtterance: single(END_OF_UTTERANCE),
      bos: tokenizer.bos_token_id,
      eos: single('</s>'),
      pad: tokenizer.pad_token_id,
    };
    for (const [k, v] of Object.entries(tokens)) {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`${abs}: the tokenizer defines no ${k} token`);
    }
    if (config.image_token_id !== undefined && config.image_token_id !== tokens.image) {
      throw new Error(`${abs}: config.json image_token_id ${config.image_token_id} is not the tokenizer's '<image>' id ${tokens.image}`);
    }
    return new Idefics2Processor(abs, tokenizer, chatTemplate, imageConfig, seqLen, tokens, readoutTokens(tokenizer, chatTemplate, abs), options);
  }

  /** The user text of one turn (SPEC §2), with the prompt cut to maxPromptLen characters. */
  userText(prompt: string): string {
    return userText(prompt, this.options);
  }

  /** The chat messages of an example; images in sequence order (the target last); per reference image, whether it is liked. */
  messages(example: PreferenceExample): { messages: ChatMessage[]; images: Array<PreferenceImage | 'target'>; liked: boolean[] } {
    const { messages, references, liked } = preferenceChat(example, this.options);
    return { messages, images: [...references, 'target'], liked };
  }

  /** The checkpoint's chat template applied to `messages`, ending with the "Assistant:" prompt. */
  renderChat(messages: ChatMessage[], addGenerationPrompt = false): string {
    return renderChat(this.tokenizer, this.chatTemplate, messages, addGenerationPrompt);
  }

  /** Idefics2Processor's `<image>` expansion (no image splitting). */
  expandImageTokens(text: string): string {
    const imageStr = FAKE_IMAGE_TOKEN + IMAGE_TOKEN.repeat(this.imageSeqLen) + FAKE_IMAGE_TOKEN;
    return text
      .split(IMAGE_TOKEN)
      .join(imageStr)
      .split(FAKE_IMAGE_TOKEN + FAKE_IMAGE_TOKEN)
      .join(FAKE_IMAGE_TOKEN)
      .replace(/<fake_token_around_image>(?=[^\s<])/g, `${FAKE_IMAGE_TOKEN} `);
  }

  /** The full text of an example as the tokenizer sees it (before `<image>` expansion). */
  renderExample(example: PreferenceExample): string {
    return this.renderChat(this.messages(example).messages, true);
  }

  /**
   * Token ids of the whole sequence of one example (BOS first, ending with "Assistant:") and where
   * each image's `<image>` tokens start. The same ids serve the liked- and the disliked-target
   * sequence.
   */
  encodeExample(example: PreferenceExample): ExampleEncoding {
    const { messages, images, liked } = this.messages(example);
    const text = this.expandImageTokens(this.renderChat(messages, true));
    const ids = Int32Array.from(this.tokenizer.encode(text));
    const imageSlots: ImageSlot[] = [];
    const img = this.tokens.image;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] !== img) continue;
      let j = i;
      while (j < ids.length && ids[j] === img) j++;
      if (j - i !== this.imageSeqLen) throw new Error(`example of user ${example.userId}: an image has ${j - i} <image> tokens at ${i}, expected ${this.imageSeqLen}`);
      if (ids[i - 1] !== this.tokens.fakeImage || ids[j] !== this.tokens.fakeImage) throw new Error(`example of user ${example.userId}: <image> run at ${i} is not wrapped in <fake_token_around_image>`);
      if (imageSlots.length >= images.length) throw new Error(`example of user ${example.userId}: more <image> runs than images`);
      imageSlots.push({ start: i, image: images[imageSlots.length] });
      i = j - 1;
    }
    if (imageSlots.length !== images.length) throw new Error(`example of user ${example.userId}: ${imageSlots.length} <image> runs for ${images.length} images`);
    return { inputIds: ids, imageSlots, referenceLiked: liked };
  }

  /** Resize, rescale, normalise and pad images (see ./image.ts). */
  preprocessImages(images: readonly RgbImage[]): PixelBatch {
    return processImages(images, this.imageConfig);
  }

  /** Right-pads encodings with the pad id into one [batch, maxLen] batch. */
  collate(encodings: ReadonlyArray<{ inputIds: Int32Array }>): CollatedBatch {
    if (encodings.length === 0) throw new Error('collate needs at least one encoding');
    const lengths = Int32Array.from(encodings.map((e) => e.inputIds.length));
    const seqLen = Math.max(...lengths);
    const b = encodings.length;
    const inputIds = new Int32Array(b * seqLen).fill(this.tokens.pad);
    const attentionMask = new Int32Array(b * seqLen);
    encodings.forEach((e, i) => {
      if (e.inputIds.length === 0) throw new Error(`collate: encoding ${i} is empty`);
      inputIds.set(e.inputIds, i * seqLen);
      attentionMask.fill(1, i * seqLen, i * seqLen + e.inputIds.length);
    });
    return { batchSize: b, seqLen, inputIds, attentionMask, lengths, lastIndex: lengths.map((l) => l - 1) };
  }

  /** Decodes ids back to text (special tokens kept), for logs and debugging. */
  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: false });
  }
}
