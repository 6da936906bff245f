/** Options of similar-user mining: one JSON schema gives the defaults, validation and --help text. */
import type { OptionsSchema, SplitName } from '@userpref/core';
import type { SimilarityKind } from './similarity';

export interface MiningOptions {
  /** Split whose users are mined (each user's first example there gives its references). */
  split: SplitName;
  /** Mine at most this many users (the first by user id); all when null. */
  users: number | null;
  /** Random re-orderings of each user's references; the vector is their mean. */
  orders: number;
  /** Nearest users listed per user. */
  k: number;
  /** The fixed target image: an image id of the split (or a unique prefix); null = the first example's image0. */
  target: string | null;
  layers: 'all' | number[];
  heads: 'all' | number[];
  /** 'mean': one number per preference token (mean over the selected layers); 'per-layer': tokens x layers. */
  vector: 'mean' | 'per-layer';
  similarity: SimilarityKind;
  /** Sequences per forward pass (0 = all orderings of a user at once). */
  batchSize: number;
  /** Attention maps of this many layers kept per forward pass (0 = all selected layers). */
  layersPerPass: number;
  seed: number;
}

const indexList = (description: string) => ({
  anyOf: [{ const: 'all' }, { type: 'array', items: { type: 'integer' }, minItems: 1 }],
  default: 'all',
  description,
});

export const MINING_SCHEMA: OptionsSchema = {
  type: 'object',
  properties: {
    split: { enum: ['train', 'validation', 'test'], default: 'test', description: "Split whose users are mined; each user's first example there gives its reference pairs (the app defaults to the config's eval.split)." },
    users: { type: ['integer', 'null'], minimum: 2, default: null, description: 'Mine at most this many users (the first by user id); null = all users of the split.' },
    orders: { type: 'integer', minimum: 1, default: 5, description: "Random re-orderings of each user's references (seeded); the user's vector is the mean over them (the paper uses 5)." },
    k: { type: 'integer', minimum: 1, default: 5, description: 'Nearest users listed per user (and used for purity).' },
    target: { type: ['string', 'null'], default: null, description: "Image id (sha256 hex, or a unique prefix) of the fixed target image, found among the split's images; null = image0 of the split's first example." },
    layers: indexList('Text-model layers whose attention is averaged: "all" or indices, comma-separated on the command line (negative counts from the end: -1 is the last).'),
    heads: indexList('Attention heads averaged: "all" or indices, comma-separated on the command line.'),
    vector: { enum: ['mean', 'per-layer'], default: 'mean', description: "'mean': one number per preference token (mean over layers); 'per-layer': tokens x layers concatenated." },
    similarity: { enum: ['cosine', 'centered-cosine'], default: 'cosine', description: "'cosine' as the paper; 'centered-cosine' subtracts the mean vector over users first (removes what every user shares, e.g. an attention sink)." },
    batchSize: { type: 'integer', minimum: 0, default: 0, description: 'Sequences per forward pass; 0 = all orderings of one user together.' },
    layersPerPass: { type: 'integer', minimum: 0, default: 0, description: 'Attention maps kept per forward pass (memory bound for long sequences); 0 = all selected layers at once.' },
    seed: { type: 'integer', default: 42, description: 'Seed of the re-orderings.' },
  },
};

export const MINING_DEFAULTS: MiningOptions = {
  split: 'test',
  users: null,
  orders: 5,
  k: 5,
  target: null,
  layers: 'all',
  heads: 'all',
  vector: 'mean',
  similarity: 'cosine',
  batchSize: 0,
  layersPerPass: 0,
  seed: 42,
};
