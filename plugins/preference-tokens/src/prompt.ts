/**
 * The paper's released preference tokens (SPEC §5): one learnable matrix P (length x d_text),
 * initialised U(0, 1), prepended to every sequence before BOS. Stage 2 trains only P. Where the
 * tokens go in the sequence (and the attention mask / last index under padding) is the
 * backbone's job; this class only owns P.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Logger, PreferenceTokens, PrefixContext } from '@userpref/core';
import { initialValues } from './init';
import { PROMPT_DEFAULTS, type PromptOptions, type TokenInit } from './options';
import { FORMAT, FORMAT_VERSION, expectTensor, readTokens, saveTokens } from './storage';

export { PROMPT_DEFAULTS };
export type { PromptOptions };

let instances = 0;

/** Checks a prefix context and returns its batch size. */
export function contextBatch(where: string, context: PrefixContext, hiddenSize: number): number {
  const q = context.historyMean;
  if (!q || q.rank !== 2) throw new Error(`${where}: historyMean must be [batch, d_text], got [${q?.shape}]`);
  if (q.shape[1] !== hiddenSize) throw new Error(`${where}: historyMean width ${q.shape[1]} does not match the tokens' hidden size ${hiddenSize}`);
  return q.shape[0];
}

export class PromptTokens implements PreferenceTokens {
  readonly name = 'prompt';
  private readonly options: PromptOptions;
  private readonly id = ++instances;
  private prompt: tf.Variable<tf.Rank.R2> | null = null;

  constructor(
    options: Partial<PromptOptions>,
    private readonly seed: number,
    private readonly logger?: Logger,
  ) {
    this.options = { ...PROMPT_DEFAULTS, ...options };
    if (!Number.isInteger(this.options.length) || this.options.length < 1) {
      throw new Error(`preference tokens 'prompt': length must be an integer >= 1, got ${this.options.length}`);
    }
  }

  get length(): number {
    return this.options.length;
  }

  get hiddenSize(): number | null {
    return this.prompt ? this.prompt.shape[1] : null;
  }

  private where(): string {
    return "preference tokens 'prompt'";
  }

  private create(values: Float32Array, hiddenSize: number): void {
    this.prompt?.dispose();
    // tidy frees the initial tensor; variables survive it.
    this.prompt = tf.tidy(() => tf.variable(tf.tensor2d(values, [this.options.length, hiddenSize]), true, `preference_tokens.prompt.${this.id}`));
  }

  build(hiddenSize: number): void {
    if (!Number.isInteger(hiddenSize) || hiddenSize < 1) throw new Error(`${this.where()}: hidden size must be an integer >= 1, got ${hiddenSize}`);
    if (this.prompt) {
      // Already built (or loaded before build): keep the values, but the width must agree.
      if (this.prompt.shape[1] !== hiddenSize) {
        throw new Error(`${this.where()}: tokens have shape [${this.prompt.shape.join(', ')}] but the text model's hidden size is ${hiddenSize}`);
      }
      return;
    }
    const values = initialValues(this.options.length * hiddenSize, this.options, this.seed, 'preference-tokens/prompt');
    this.create(values, hiddenSize);
    this.logger?.info('preference tokens built', { kind: 'prompt', length: this.options.length, hiddenSize, init: this.options.init, params: values.length });
  }

  private built(): tf.Variable<tf.Rank.R2> {
    if (!this.prompt) throw new Error(`${this.where()}: call build(hiddenSize) or load(path) first`);
    return this.prompt;
  }

  variables(): tf.Variable[] {
    return [this.built()];
  }

  /** P, broadcast to [batch, length, d]; gradients of all rows sum into P. */
  prefix(context: PrefixContext): { embeddings: tf.Tensor3D } {
    const p = this.built();
    const batch = contextBatch(this.where(), context, p.shape[1]);
    return { embeddings: tf.tidy(() => tf.tile(tf.expandDims(p, 0), [batch, 1, 1]) as tf.Tensor3D) };
  }

  async save(dir: string): Promise<void> {
    const p = this.built();
    await saveTokens(
      dir,
      { format: FORMAT, version: FORMAT_VERSION, kind: 'prompt', length: this.options.length, hiddenSize: p.shape[1], init: this.options.init, std: this.options.std },
      [{ name: 'prompt', shape: [...p.shape], data: (await p.data()) as Float32Array }],
    );
  }

  /** Loads a directory saved by `save`, a .safetensors file, or the paper's prompt_pool.pt. */
  async load(source: string): Promise<void> {
    const stored = await readTokens(source);
    if (stored.config && stored.config.kind !== 'prompt') {
      throw new Error(`${this.where()}: ${source} holds '${stored.config.kind}' tokens, not 'prompt'`);
    }
    const found = stored.tensors.get('prompt');
    const hiddenSize = this.prompt ? this.prompt.shape[1] : (found?.shape[1] ?? 0);
    const t = expectTensor(stored, 'prompt', [this.options.length, hiddenSize], 'the configured length x hidden size');
    if (this.prompt) {
      const p = this.prompt;
      tf.tidy(() => p.assign(tf.tensor2d(t.data, [this.options.length, hiddenSize])));
    } else {
      this.create(t.data, hiddenSize);
    }
    this.logger?.info('preference tokens loaded', { kind: 'prompt', source: stored.source, shape: t.shape });
  }

  dispose(): void {
    this.prompt?.dispose();
    this.prompt = null;
  }
}

export type { TokenInit };
