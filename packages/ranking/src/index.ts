/**
 * @userpref/ranking: which of these candidate images will this person like? A person's history
 * (liked / disliked pairs, or a user of an imported data set), an optional prompt and N candidates
 * in; each candidate's score z+ - z-, its probability and the order out. Works with any Backbone
 * plugin (the history runs once where the backbone offers Backbone.openHistory).
 */
export { rankCandidates, scoreByPairs, pairHistory, RankRequestError } from './rank';
export type { RankCandidate, RankRequest, RankOptions, Ranking, ScoredCandidate } from './rank';
export { readImage, readImageFile, readImagePaths, writePng, ImageInputError, IMAGE_FORMATS, DEFAULT_IMAGE_SIZE, MAX_INPUT_PIXELS } from './images';
export type { InputImage, ReadImageOptions } from './images';
export { historyOfUser } from './dataset-history';
export type { DatasetHistory } from './dataset-history';
export { formatRanking } from './format';
export { loadPreferenceTokens } from './tokens';
