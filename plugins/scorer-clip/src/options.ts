/**
 * The options schemas of the scorers. Each validates run configs, fills defaults and documents
 * the options; the TypeScript types of the options are derived from them, never written beside
 * them. Paths arrive as written in the config; the wiring (./index.ts) makes them absolute
 * against the run's folder before a scorer sees them.
 */
import { PATH_FORMAT, type OptionsOf } from '@userpref/core';

const pathOption = (what: string) => ({ type: 'string', format: PATH_FORMAT, minLength: 1, description: `${what} Relative paths resolve against the run config's folder.` }) as const;
const batchSize = { type: 'integer', minimum: 1, default: 8, description: 'Images per image-encoder call.' } as const;
const logitScale = (def: number, why: string) =>
  ({ type: 'number', exclusiveMinimum: 0, default: def, description: `exp(logit_scale) of the checkpoint, multiplying the cosine (${why}). It does not change which image wins, only the score gap the pickscore tie threshold sees.` }) as const;

/** The schema of a CLIP-score scorer (clip, pickscore, hps): the same options, other words and default scale. */
export const clipScoreSchema = (what: string, scale: string, defaultScale = 100) =>
  ({
    type: 'object',
    properties: {
      path: pathOption(`${what} checkpoint directory in the transformers.js layout: config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json, onnx/text_model.onnx, onnx/vision_model.onnx.`),
      logitScale: logitScale(defaultScale, scale),
      batchSize,
    },
    required: ['path'],
    additionalProperties: false,
  }) as const;

export const aestheticSchema = {
  type: 'object',
  properties: {
    path: pathOption('CLIP ViT-L/14 checkpoint directory in the transformers.js layout (only preprocessor_config.json, config.json and onnx/vision_model.onnx are read).'),
    head: pathOption('The MLP head as safetensors with the original keys layers.{0,2,4,6,7}.{weight,bias}.'),
    batchSize,
  },
  required: ['path', 'head'],
  additionalProperties: false,
} as const;

/** `{ path, logitScale, batchSize }`: checkpoint directory (transformers.js layout), exp(logit_scale) of the checkpoint, images per encoder call. */
export type ClipScoreOptions = OptionsOf<ReturnType<typeof clipScoreSchema>>;

/** `{ path, head, batchSize }`: CLIP ViT-L/14 directory (only the vision part is loaded), the MLP head (safetensors), images per encoder call. */
export type AestheticOptions = OptionsOf<typeof aestheticSchema>;
