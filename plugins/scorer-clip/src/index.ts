/**
 * @userpref/scorer-clip: the CLIP-based zero-shot scorers of the paper's Table 1 (CLIP score,
 * PickScore, HPS v2 once converted, the LAION aesthetic predictor) on @huggingface/transformers (ONNX, CPU, local files
 * only), as userpref scorer plugins.
 */
import * as path from 'path';
import { defineContribution, definePlugin, type RunContext } from '@userpref/core';
import { aestheticSchema, clipScoreSchema, type ClipScoreOptions } from './options';
import { AestheticScore, ClipScore } from './scorers';

export { AestheticScore, ClipScore, applyLinearChain, readLinearChain } from './scorers';
export type { LinearLayer } from './scorers';
export { aestheticSchema, clipScoreSchema } from './options';
export type { AestheticOptions, ClipScoreOptions } from './options';
export { ClipEncoder, CLIP_FILES, MissingModelFileError, checkClipDir, cosine } from './clip';
export { parseClipImageConfig, pixelValues, resizeAndCrop, resizePil, shortestEdgeTarget, centerCrop } from './preprocess';
export type { ClipImageConfig } from './preprocess';

/** A path option made absolute against the run config's folder. */
const absolute = (run: RunContext, p: string) => path.resolve(run.baseDir, p);
const clipScore = (o: ClipScoreOptions, run: RunContext) => new ClipScore({ ...o, path: absolute(run, o.path) });

export const userprefPlugin = definePlugin('@userpref/scorer-clip', [
  defineContribution({
    kind: 'scorer',
    name: 'clip',
    description: "CLIP score, the paper's CLIP row: logitScale * cos(text embedding of the prompt, image embedding), from a CLIP checkpoint (the paper's: openai/clip-vit-large-patch14; ONNX: Xenova/clip-vit-large-patch14).",
    optionsSchema: clipScoreSchema('CLIP', '100 for the openai CLIP models'),
    create: (o, { run }) => clipScore(o, run),
  }),
  defineContribution({
    kind: 'scorer',
    name: 'pickscore',
    description: 'PickScore (Kirstain et al. 2023): the CLIP score of yuvalkirstain/PickScore_v1, a CLIP-H fine-tuned on Pick-a-Pic; the same code as clip with its weights (export it to ONNX, see the README).',
    optionsSchema: clipScoreSchema('PickScore', 'set it to the exp(logit_scale) clip_onnx.py prints for the checkpoint'),
    create: (o, { run }) => clipScore(o, run),
  }),
  defineContribution({
    kind: 'scorer',
    name: 'hps',
    description:
      "HPS v2 / v2.1 (Wu et al. 2023): an open_clip ViT-H-14 fine-tuned on human preferences, converted to this layout by goldens/convert_open_clip_to_hf.py; HPS's score is the plain cosine of the normalised features, so logitScale defaults to 1.",
    optionsSchema: clipScoreSchema('HPS v2 (converted)', "1: HPS's score is the plain cosine", 1),
    create: (o, { run }) => clipScore(o, run),
  }),
  defineContribution({
    kind: 'scorer',
    name: 'aesthetic',
    description: 'LAION improved aesthetic predictor (sac+logos+ava1-l14-linearMSE): the L2-normalised CLIP ViT-L/14 image embedding through its MLP head (Linear layers, no activation). Ignores the prompt.',
    optionsSchema: aestheticSchema,
    create: (o, { run }) => new AestheticScore({ ...o, path: absolute(run, o.path), head: absolute(run, o.head) }),
  }),
]);

export const { contributions } = userprefPlugin;
