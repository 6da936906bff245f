/** The pre-training stand-in for a pretrained base (see pretrain.ts), for the demo and other tools. */
export { pretrainIdefics2, FullParameterBackbone, PRETRAINING_FILE } from './pretrain';
export type { PretrainOptions, PretrainResult, PretrainEvaluation } from './pretrain';
export { parsePretrainArgs } from './args';
