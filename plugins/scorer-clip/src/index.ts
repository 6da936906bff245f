/**
 * @userpref/scorer-clip: the CLIP-based zero-shot scorers of the paper's Table 1 (CLIP score,
 * PickScore, HPS v2 once converted, the LAION aesthetic predictor) on @huggingface/transformers (ONNX, CPU, local files
 * only), as userpref scorer plugins.
 */
import * as path from 'path';
import { ContainerModule } from 'inversify';
import { PATH_FORMAT, PluginOptions, RunContext, ZeroShotScorer, optionsName, type Contribution, type OptionsSchema, type UserprefPlugin } from '@userpref/core';
import { AestheticScore, ClipScore } from './scorers';

export { AestheticScore, ClipScore, applyLinearChain, readLinearChain } from './scorers';
export type { AestheticOptions, ClipScoreOptions, LinearLayer } from './scorers';
export { ClipEncoder, CLIP_FILES, MissingModelFileError, checkClipDir, cosine } from './clip';
export { parseClipImageConfig, pixelValues, resizeAndCrop, resizePil, shortestEdgeTarget, centerCrop } from './preprocess';
export type { ClipImageConfig } from './preprocess';

const pathOption = (what: string) => ({ type: 'string', format: PATH_FORMAT, minLength: 1, description: `${what} Relative paths resolve against the run config's folder.` });
const batchSize = { type: 'integer', minimum: 1, default: 8, description: 'Images per image-encoder call.' };
const logitScale = (def: number, why: string) => ({ type: 'number', exclusiveMinimum: 0, default: def, description: `exp(logit_scale) of the checkpoint, multiplying the cosine (${why}). It does not change which image wins, only the score gap the pickscore tie threshold sees.` });

const clipSchema = (what: string, scale: string, defaultScale = 100): OptionsSchema => ({
  type: 'object',
  properties: {
    path: pathOption(`${what} checkpoint directory in the transformers.js layout: config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json, onnx/text_model.onnx, onnx/vision_model.onnx.`),
    logitScale: logitScale(defaultScale, scale),
    batchSize,
  },
  required: ['path'],
  additionalProperties: false,
});

/** Each contribution with the scorer it makes from its validated options (paths already absolute). */
interface ScorerContribution extends Contribution {
  make(options: Record<string, unknown>, resolve: (p: string) => string): ZeroShotScorer;
}

const clipScore = (o: Record<string, unknown>, resolve: (p: string) => string) =>
  new ClipScore({ path: resolve(o.path as string), logitScale: o.logitScale as number, batchSize: o.batchSize as number });

const scorers: ScorerContribution[] = [
  {
    kind: 'scorer',
    name: 'clip',
    description: "CLIP score, the paper's CLIP row: logitScale * cos(text embedding of the prompt, image embedding), from a CLIP checkpoint (the paper's: openai/clip-vit-large-patch14; ONNX: Xenova/clip-vit-large-patch14).",
    optionsSchema: clipSchema('CLIP', '100 for the openai CLIP models'),
    make: clipScore,
  },
  {
    kind: 'scorer',
    name: 'pickscore',
    description: 'PickScore (Kirstain et al. 2023): the CLIP score of yuvalkirstain/PickScore_v1, a CLIP-H fine-tuned on Pick-a-Pic; the same code as clip with its weights (export it to ONNX, see the README).',
    optionsSchema: clipSchema('PickScore', 'set it to the exp(logit_scale) clip_onnx.py prints for the checkpoint'),
    make: clipScore,
  },
  {
    kind: 'scorer',
    name: 'hps',
    description:
      "HPS v2 / v2.1 (Wu et al. 2023): an open_clip ViT-H-14 fine-tuned on human preferences, converted to this layout by goldens/convert_open_clip_to_hf.py; HPS's score is the plain cosine of the normalised features, so logitScale defaults to 1.",
    optionsSchema: clipSchema('HPS v2 (converted)', "1: HPS's score is the plain cosine", 1),
    make: clipScore,
  },
  {
    kind: 'scorer',
    name: 'aesthetic',
    description: 'LAION improved aesthetic predictor (sac+logos+ava1-l14-linearMSE): the L2-normalised CLIP ViT-L/14 image embedding through its MLP head (Linear layers, no activation). Ignores the prompt.',
    optionsSchema: {
      type: 'object',
      properties: {
        path: pathOption('CLIP ViT-L/14 checkpoint directory in the transformers.js layout (only preprocessor_config.json, config.json and onnx/vision_model.onnx are read).'),
        head: pathOption('The MLP head as safetensors with the original keys layers.{0,2,4,6,7}.{weight,bias}.'),
        batchSize,
      },
      required: ['path', 'head'],
      additionalProperties: false,
    },
    make: (o, resolve) => new AestheticScore({ path: resolve(o.path as string), head: resolve(o.head as string), batchSize: o.batchSize as number }),
  },
];

export const contributions: Contribution[] = scorers.map(({ make: _make, ...c }) => c);

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/scorer-clip',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    for (const c of scorers) {
      bind<ZeroShotScorer>(ZeroShotScorer)
        .toDynamicValue((ctx) => {
          const baseDir = ctx.get<RunContext>(RunContext).baseDir;
          return c.make(ctx.get<Record<string, unknown>>(PluginOptions, { name: optionsName('scorer', c.name) }), (p) => path.resolve(baseDir, p));
        })
        .whenNamed(c.name);
    }
  }),
};
