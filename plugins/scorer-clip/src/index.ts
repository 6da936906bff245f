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

export const contributions: Contribution[] = [
  {
    kind: 'scorer',
    name: 'clip',
    description: "CLIP score, the paper's CLIP row: logitScale * cos(text embedding of the prompt, image embedding), from a CLIP checkpoint (the paper's: openai/clip-vit-large-patch14; ONNX: Xenova/clip-vit-large-patch14).",
    optionsSchema: clipSchema('CLIP', '100 for the openai CLIP models'),
  },
  {
    kind: 'scorer',
    name: 'pickscore',
    description: 'PickScore (Kirstain et al. 2023): the CLIP score of yuvalkirstain/PickScore_v1, a CLIP-H fine-tuned on Pick-a-Pic; the same code as clip with its weights (export it to ONNX, see the README).',
    optionsSchema: clipSchema('PickScore', "set it to the exp(logit_scale) clip_onnx.py prints for the checkpoint"),
  },
  {
    kind: 'scorer',
    name: 'hps',
    description:
      "HPS v2 / v2.1 (Wu et al. 2023): an open_clip ViT-H-14 fine-tuned on human preferences, converted to this layout by tools/goldens/convert_open_clip_to_hf.py; HPS's score is the plain cosine of the normalised features, so logitScale defaults to 1.",
    optionsSchema: clipSchema('HPS v2 (converted)', "1: HPS's score is the plain cosine", 1),
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
  },
];

const resolve = (ctx: { get<T>(id: symbol): T }, p: string) => path.resolve(ctx.get<RunContext>(RunContext).baseDir, p);

export const userprefPlugin: UserprefPlugin = {
  packageName: '@userpref/scorer-clip',
  contributions,
  containerModule: new ContainerModule(({ bind }) => {
    for (const name of ['clip', 'pickscore', 'hps']) {
      bind<ZeroShotScorer>(ZeroShotScorer)
        .toDynamicValue((ctx) => {
          const o = ctx.get<{ path: string; logitScale: number; batchSize: number }>(PluginOptions, { name: optionsName('scorer', name) });
          return new ClipScore({ ...o, path: resolve(ctx, o.path) });
        })
        .whenNamed(name);
    }
    bind<ZeroShotScorer>(ZeroShotScorer)
      .toDynamicValue((ctx) => {
        const o = ctx.get<{ path: string; head: string; batchSize: number }>(PluginOptions, { name: optionsName('scorer', 'aesthetic') });
        return new AestheticScore({ path: resolve(ctx, o.path), head: resolve(ctx, o.head), batchSize: o.batchSize });
      })
      .whenNamed('aesthetic');
  }),
};
