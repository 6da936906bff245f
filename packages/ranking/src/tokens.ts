/** Trained preference tokens (stage 2) put before the history of every ranking. */
import { ConfigError, type Backbone, type PreferenceTokens } from '@userpref/core';

export async function loadPreferenceTokens(backbone: Backbone, tokens: PreferenceTokens | undefined, dir: string): Promise<void> {
  if (!tokens) throw new ConfigError('preference tokens were given (--tokens_path) but the run config has no plugins.tokens');
  tokens.build(backbone.textHiddenSize);
  await tokens.load(dir);
  backbone.setPrefixProvider(tokens);
}
