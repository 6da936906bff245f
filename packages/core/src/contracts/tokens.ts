import type * as tf from '@tensorflow/tfjs-core';
import type { PrefixProvider } from './backbone';

/**
 * Learnable preference tokens (SPEC §5): a (length x d_text) matrix, or a pool of them, that the
 * backbone prepends to every sequence. Stage 2 trains them.
 */
export const PreferenceTokens = Symbol.for('userpref.PreferenceTokens');
export interface PreferenceTokens extends PrefixProvider {
  /** Creates the variables for a text model of width `hiddenSize`. */
  build(hiddenSize: number): void;
  variables(): tf.Variable[];
  save(dir: string): Promise<void>;
  load(path: string): Promise<void>;
}
