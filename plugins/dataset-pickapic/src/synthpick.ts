/**
 * synthpick: a synthetic Pick-a-Pic with known answers, small enough for a CPU demo.
 *
 * Images are drawn procedurally from six visual attributes (shape, colour, texture, layout,
 * background, and a style that plays the part of the generating model). A prompt names some of
 * them; both images of a comparison share those and differ in the rest. Each user has a hidden
 * taste vector over the attributes = a small population-wide preference + their taste cluster's
 * centre + a personal deviation (cluster centres are centred, so the population average is
 * nearly flat and most of the signal is personal, as in Pick-a-Pic). Choices follow a
 * Bradley-Terry model with a lapse rate: p0 = lapse/2 + (1 - lapse) * sigmoid(beta * (u0 - u1)).
 * Like Pick-a-Pic, a prompt is played in rounds where the winner stays against a new image.
 *
 * The output is Pick-a-Pic v2 parquet (same columns, read by reader 1) plus a sidecar
 * synthpick-truth.json with every comparison's p0 and every user's cluster, so the
 * Bayes-optimal accuracy of any split is known exactly.
 */
import { promises as fsp } from 'fs';
import * as path from 'path';
import { Rng, type RgbImage } from '@userpref/core';
import { encodeRgb, mapLimit } from './images';
import { ParquetFileWriter, type ColumnSpec } from './parquet-io';

export const TRUTH_FILE = 'synthpick-truth.json';

/** A synthpick parameter set that cannot describe a world (found before anything is written). */
export class SynthpickParamsError extends Error {
  /** A user-facing failure: printed as one line by the runners (isExpectedError in @userpref/core). */
  readonly expected = true;
  constructor(message: string) {
    super(`synthpick: ${message}`);
    this.name = 'SynthpickParamsError';
  }
}

// Module-local aliases: inside a vm context (jest) every global lookup such as `Math` is slow,
// and the pixel loop below does millions of them.
const { abs, floor, max, round } = Math;

export const ATTRIBUTES = {
  shape: ['circle', 'square', 'triangle', 'diamond'],
  colour: ['red', 'orange', 'yellow', 'green', 'blue', 'purple'],
  texture: ['plain', 'striped', 'dotted', 'checkered'],
  layout: ['single', 'pair', 'grid', 'scattered'],
  background: ['light', 'dark', 'warm'],
  style: ['flat', 'outlined', 'shaded'],
} as const;
type Group = keyof typeof ATTRIBUTES;
const GROUPS = Object.keys(ATTRIBUTES) as Group[];
/** Groups a prompt may name (style is the "model", never in the prompt). */
const PROMPT_GROUPS: Group[] = ['shape', 'colour', 'texture', 'layout', 'background'];
const OFFSETS: Record<Group, number> = {} as Record<Group, number>;
let FEATURES = 0;
for (const g of GROUPS) {
  OFFSETS[g] = FEATURES;
  FEATURES += ATTRIBUTES[g].length;
}
export const MODELS = ['synth-flat', 'synth-outline', 'synth-shade'] as const;

export interface SynthpickParams {
  users: number;
  comparisonsPerUser: number;
  clusters: number;
  /** Side of the drawn square images, in pixels. */
  imageSize: number;
  /** Scales of the population, cluster and personal parts of a taste vector. */
  globalScale: number;
  clusterScale: number;
  personalScale: number;
  /**
   * Attribute groups the taste clusters disagree on (default: all). Outside them the cluster
   * centres are zero, so people differ there only by their small personal parts.
   */
  tasteGroups?: readonly Group[];
  /** Attribute groups a prompt may name (default: all but style); the rest always vary within a comparison. */
  promptGroups?: readonly Group[];
  /**
   * Taste clusters built from factors instead of drawn one by one (then `tasteGroups` is not
   * used): each factor draws two opposite poles over its attribute groups at its scale, as the
   * two centres of a two-camp world are drawn, and the 2^F clusters take every combination of
   * poles (cluster k takes the second pole of factor i when bit i of k is set). One factor over
   * colour and texture is camps-xl's two camps; a second factor splits each camp in two.
   *
   * `distance` (optional) fixes how far apart a factor's two poles are (the Euclidean norm of
   * their difference over the factor's features); only the direction is drawn. Without it the
   * distance is left to the draw, and on a factor over few attribute values it varies a lot from
   * one world seed to the next (camps-split-xl's style factor: 1.2 on seed 44, 5.0 on seed 43),
   * so whether the camps split at all would be luck of the seed.
   */
  campFactors?: ReadonlyArray<{ readonly groups: readonly Group[]; readonly scale: number; readonly distance?: number }>;
  /** Bradley-Terry inverse temperature and lapse rate (random choice). */
  beta: number;
  lapse: number;
  /** Shares of rows published as ties, unlabelled, or with identical images. */
  tieRate: number;
  unlabeledRate: number;
  identicalRate: number;
  /** Parquet files to spread the rows over, rows per row group. */
  shards: number;
  rowGroupRows: number;
}

const BASE: Omit<SynthpickParams, 'users' | 'comparisonsPerUser' | 'clusters' | 'shards'> = {
  imageSize: 64,
  globalScale: 0.2,
  clusterScale: 1.0,
  personalScale: 0.45,
  beta: 2.0,
  lapse: 0.06,
  tieRate: 0.03,
  unlabeledRate: 0.02,
  identicalRate: 0.02,
  rowGroupRows: 128,
};

/** The SynthpickParams keys no preset sets. */
const OPTIONAL_PARAMS: readonly string[] = ['tasteGroups', 'promptGroups', 'campFactors'] satisfies Array<keyof SynthpickParams>;

export const PRESETS = {
  /** Unit tests: a second or two. */
  tiny: { ...BASE, users: 12, comparisonsPerUser: 12, clusters: 3, shards: 1 },
  /** The embedded CPU demo. */
  default: { ...BASE, users: 80, comparisonsPerUser: 24, clusters: 4, shards: 2 },
  /**
   * Other people of the demo's world (generate with the demo's seed as populationSeed and
   * another seed): the data of the stand-in pre-training (README, "The embedded demo").
   */
  population: { ...BASE, users: 600, comparisonsPerUser: 24, clusters: 4, shards: 4 },
  /**
   * The embedded demo's world (README, "The embedded demo"): two taste camps that disagree on
   * colour and texture only. Shape, layout, background and style carry no shared taste (people
   * differ there only by small personal parts) and prompts name only those, so colour and texture
   * always vary within a comparison. A reader that compares images on every attribute is misled by
   * the four taste-free ones; a reader that learned which attributes matter is not (ceilings bench).
   */
  camps: { ...BASE, users: 80, comparisonsPerUser: 24, clusters: 2, shards: 2, clusterScale: 2.5, personalScale: 0.15, tasteGroups: ['colour', 'texture'], promptGroups: ['shape', 'layout', 'background'] },
  /** The same world with three times the people: a test split of ~590 comparisons (the demo's longer run). */
  'camps-large': { ...BASE, users: 240, comparisonsPerUser: 24, clusters: 2, shards: 4, clusterScale: 2.5, personalScale: 0.15, tasteGroups: ['colour', 'texture'], promptGroups: ['shape', 'layout', 'background'] },
  /**
   * The same world with 3.6 times the people (288): a test split of ~640 comparisons, so that stage 1's
   * paired interval against the base is at most 4 points wide on every seed (the demo since issue 19).
   */
  'camps-xl': { ...BASE, users: 288, comparisonsPerUser: 24, clusters: 2, shards: 4, clusterScale: 2.5, personalScale: 0.15, tasteGroups: ['colour', 'texture'], promptGroups: ['shape', 'layout', 'background'] },
  /**
   * An exploration of issue 19 (README "The embedded demo", config apps/demo/config/demo-camps4.json):
   * camps-xl with four camps over the same two taste groups (random centres, so they disagree on
   * different colour/texture combinations): the random purity baseline of mining drops to ~25%, and
   * the taste is no longer one direction, so the base's reader turned by LoRA reaches less.
   */
  'camps4-xl': { ...BASE, users: 288, comparisonsPerUser: 24, clusters: 4, shards: 4, clusterScale: 2.5, personalScale: 0.15, tasteGroups: ['colour', 'texture'], promptGroups: ['shape', 'layout', 'background'] },
  /**
   * camps-xl's two camps, each split in two by a second taste, on style (camp factors): four groups
   * of people, each sharing a colour/texture camp with one other group and a style with another
   * (mining's random purity baseline ~25%). The poles of each factor are 10 (colour/texture) and 3
   * (style) apart on every seed, as seed 42's free draw had them (9.8 and 2.9). Left to the draw,
   * the style split ranged from 1.2 (seed 44: its groups barely differed within a camp) to 5.0
   * (seed 43: a two-dimensional taste that the demo's LoRA reader learned 4 points less of).
   */
  'camps-split-xl': {
    ...BASE,
    users: 288,
    comparisonsPerUser: 24,
    clusters: 4,
    shards: 4,
    clusterScale: 2.5,
    personalScale: 0.15,
    promptGroups: ['shape', 'layout', 'background'],
    campFactors: [
      { groups: ['colour', 'texture'], scale: 2.5, distance: 10 },
      { groups: ['style'], scale: 2.5, distance: 3 },
    ],
  },
} satisfies Record<string, SynthpickParams>;
export type SynthpickPreset = keyof typeof PRESETS;

/** One image: a value index per attribute group and a seed for its placement jitter. */
export interface ImageSpec {
  readonly attrs: Readonly<Record<Group, number>>;
  readonly seed: number;
  readonly uid: string;
}

export interface SimComparison {
  readonly rankingId: number;
  readonly user: number;
  readonly prompt: string;
  readonly image0: ImageSpec;
  readonly image1: ImageSpec;
  /** True P(image0 preferred) for this user. */
  readonly p0: number;
  /** Does the population-average taste prefer image0? */
  readonly populationPick0: boolean;
  /** Published label: 1, 0, or 0.5 (tie). */
  readonly label0: number;
  readonly hasLabel: boolean;
  readonly areDifferent: boolean;
  readonly numExamplePerPrompt: number;
}

export interface SynthpickSummary {
  users: number;
  comparisons: number;
  /** Comparisons the summary is over: labelled, different, not tied. */
  scored: number;
  /** Expected accuracy of the best possible predictor, mean of max(p0, 1 - p0). */
  bayesOptimalAccuracy: number;
  /** Expected accuracy of predicting with the population-average taste (no personalisation). */
  populationAccuracy: number;
  [k: string]: number;
}

export interface SynthpickSimulation {
  readonly params: SynthpickParams;
  readonly seed: number;
  readonly populationSeed: number;
  readonly users: ReadonlyArray<{ userId: number; cluster: number; taste: Float64Array }>;
  readonly comparisons: readonly SimComparison[];
  readonly summary: SynthpickSummary;
}

export interface SynthpickTruth {
  kind: 'synthpick';
  preset: string;
  seed: number;
  populationSeed: number;
  params: SynthpickParams;
  attributes: typeof ATTRIBUTES;
  summary: SynthpickSummary;
  users: Array<{ user_id: string; cluster: number }>;
  comparisons: Array<{ ranking_id: string; user_id: string; p0: number; population_pick0: boolean }>;
  /** Every image's attribute values: uid -> one value index per group, in `attributes` order. */
  images: Record<string, number[]>;
}

/** The attribute groups the taste clusters of a world disagree on (every group when not restricted). */
export function campGroups(params: SynthpickParams): Group[] {
  if (params.campFactors) return GROUPS.filter((g) => params.campFactors!.some((f) => f.groups.includes(g)));
  return params.tasteGroups ? [...params.tasteGroups] : [...GROUPS];
}

const features = (s: ImageSpec): number[] => GROUPS.map((g) => OFFSETS[g] + s.attrs[g]);
const utility = (taste: Float64Array, s: ImageSpec): number => features(s).reduce((a, f) => a + taste[f], 0);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** A random vector over the features, centred within each attribute group (only differences matter). */
function groupCentred(rng: Rng, scale: number): Float64Array {
  const v = new Float64Array(FEATURES);
  for (const g of GROUPS) {
    const n = ATTRIBUTES[g].length;
    let mean = 0;
    for (let k = 0; k < n; k++) mean += v[OFFSETS[g] + k] = rng.normal() * scale;
    for (let k = 0; k < n; k++) v[OFFSETS[g] + k] -= mean / n;
  }
  return v;
}

function describe(fixed: Partial<Record<Group, number>>): string {
  const layoutWords = ['one big', 'two', 'four', 'scattered'];
  const plural = fixed.layout !== undefined && fixed.layout !== 0;
  const words: string[] = [];
  if (fixed.layout !== undefined) words.push(layoutWords[fixed.layout]);
  else words.push('some');
  if (fixed.texture !== undefined) words.push(ATTRIBUTES.texture[fixed.texture]);
  if (fixed.colour !== undefined) words.push(ATTRIBUTES.colour[fixed.colour]);
  const noun = fixed.shape !== undefined ? ATTRIBUTES.shape[fixed.shape] : 'shape';
  words.push(plural || fixed.layout === undefined ? `${noun}s` : noun);
  if (fixed.background !== undefined) words.push(`on a ${ATTRIBUTES.background[fixed.background]} background`);
  return words.join(' ');
}

/**
 * Draws the users, comparisons and choices (no pixels): fast, so calibration can be tested.
 *
 * `populationSeed` (default: `seed`) draws the population: the global taste and the cluster
 * centres. Two sets with the same population seed and different seeds hold different people
 * (own personal tastes, images, choices) of the same world, as a model pre-trained on other
 * people's data would have seen. With populationSeed === seed the draws are the original ones.
 */
export function simulateSynthpick(params: SynthpickParams, seed: number, populationSeed: number = seed): SynthpickSimulation {
  const world = Rng.stream(populationSeed, 'synthpick/taste');
  const global = groupCentred(world, params.globalScale);
  const known = (g: Group) => {
    if (!GROUPS.includes(g)) throw new SynthpickParamsError(`unknown taste group '${g}' (known: ${GROUPS.join(', ')})`);
  };
  let centres: Float64Array[];
  if (params.campFactors) {
    const factors = params.campFactors;
    if (params.tasteGroups) throw new SynthpickParamsError('campFactors name their own attribute groups: leave tasteGroups out');
    if (!factors.length || params.clusters !== 2 ** factors.length) throw new SynthpickParamsError(`${factors.length} camp factor(s) make ${2 ** factors.length} clusters, but clusters is ${params.clusters}`);
    // Each factor: two poles drawn at its scale, kept on its groups only.
    const poles = factors.map((f) => {
      if (!f.groups.length || !(f.scale >= 0)) throw new SynthpickParamsError(`a camp factor needs attribute groups and a scale >= 0, got ${JSON.stringify(f)}`);
      f.groups.forEach(known);
      const pair = [0, 1].map(() => {
        const drawn = groupCentred(world, f.scale);
        for (const g of GROUPS) if (!f.groups.includes(g)) drawn.fill(0, OFFSETS[g], OFFSETS[g] + ATTRIBUTES[g].length);
        return drawn;
      });
      if (f.distance === undefined) return pair;
      if (!(f.distance > 0) || !Number.isFinite(f.distance)) throw new SynthpickParamsError(`a camp factor's distance must be a finite number > 0, got ${JSON.stringify(f)}`);
      // Same midpoint and direction, the poles moved to distance apart.
      const gap = Math.sqrt(pair[0].reduce((a, v, i) => a + (pair[1][i] - v) ** 2, 0));
      if (!(gap > 0)) throw new SynthpickParamsError(`a camp factor over ${f.groups.join(', ')} drew two equal poles: give it a scale > 0`);
      const half = f.distance / gap / 2;
      return [-1, 1].map((side) => pair[0].map((v, i) => (v + pair[1][i]) / 2 + side * half * (pair[1][i] - v)));
    });
    centres = Array.from({ length: params.clusters }, (_, k) => {
      const c = new Float64Array(FEATURES);
      poles.forEach((pair, i) => pair[(k >> i) & 1].forEach((v, f) => (c[f] += v)));
      return c;
    });
  } else {
    centres = Array.from({ length: params.clusters }, () => groupCentred(world, params.clusterScale));
    if (params.tasteGroups) {
      params.tasteGroups.forEach(known);
      for (const g of GROUPS) if (!params.tasteGroups.includes(g)) for (const c of centres) c.fill(0, OFFSETS[g], OFFSETS[g] + ATTRIBUTES[g].length);
    }
  }
  // The personal parts continue the population stream when the seeds agree (the original
  // draws); another person's world gets its own stream.
  const taste = populationSeed === seed ? world : Rng.stream(seed, 'synthpick/personal');
  // Centre the cluster centres: the crowd's average taste is then just the small global part.
  for (let f = 0; f < FEATURES; f++) {
    const m = centres.reduce((a, c) => a + c[f], 0) / centres.length;
    for (const c of centres) c[f] -= m;
  }
  const users = Array.from({ length: params.users }, (_, i) => {
    const cluster = i % params.clusters;
    const personal = groupCentred(taste, params.personalScale);
    const t = new Float64Array(FEATURES);
    for (let f = 0; f < FEATURES; f++) t[f] = global[f] + centres[cluster][f] + personal[f];
    return { userId: 100_000 + 37 * i, cluster, taste: t };
  });
  const mean = new Float64Array(FEATURES);
  for (const u of users) for (let f = 0; f < FEATURES; f++) mean[f] += u.taste[f] / users.length;

  const promptGroups = params.promptGroups ?? PROMPT_GROUPS;
  if (!promptGroups.length) throw new SynthpickParamsError('promptGroups must name at least one group (a prompt names one to three)');
  for (const g of promptGroups) if (!PROMPT_GROUPS.includes(g)) throw new SynthpickParamsError(`'${g}' cannot be named in a prompt (allowed: ${PROMPT_GROUPS.join(', ')})`);
  const rng = Rng.stream(seed, 'synthpick/comparisons');
  const comparisons: SimComparison[] = [];
  let imageCounter = 0;
  const newImage = (fixed: Partial<Record<Group, number>>): ImageSpec => {
    const attrs = {} as Record<Group, number>;
    for (const g of GROUPS) attrs[g] = fixed[g] ?? rng.int(ATTRIBUTES[g].length);
    return { attrs, seed: rng.seed(), uid: `syn-${seed}-${imageCounter++}` };
  };
  users.forEach((user, ui) => {
    let left = params.comparisonsPerUser;
    while (left > 0) {
      const fixed: Partial<Record<Group, number>> = {};
      const named = rng.shuffle([...promptGroups]).slice(0, 1 + rng.int(Math.min(3, promptGroups.length)));
      for (const g of named) fixed[g] = rng.int(ATTRIBUTES[g].length);
      const prompt = describe(fixed);
      const u = rng.uniform();
      const rounds = Math.min(left, u < 0.5 ? 1 : u < 0.8 ? 2 : 3);
      let champion = newImage(fixed);
      for (let r = 0; r < rounds; r++) {
        const identical = rng.bernoulli(params.identicalRate);
        const challenger = identical ? champion : newImage(fixed);
        const [image0, image1] = rng.bernoulli(0.5) ? [champion, challenger] : [challenger, champion];
        const d = utility(user.taste, image0) - utility(user.taste, image1);
        const p0 = params.lapse / 2 + (1 - params.lapse) * sigmoid(params.beta * d);
        const populationPick0 = utility(mean, image0) - utility(mean, image1) > 0;
        const hasLabel = !rng.bernoulli(params.unlabeledRate);
        const tie = rng.bernoulli(params.tieRate);
        const pick0 = rng.bernoulli(p0);
        const label0 = tie ? 0.5 : pick0 ? 1 : 0;
        comparisons.push({ rankingId: comparisons.length + 1, user: ui, prompt, image0, image1, p0, populationPick0, label0, hasLabel, areDifferent: !identical, numExamplePerPrompt: rounds });
        if (label0 !== 0.5) champion = pick0 ? image0 : image1;
      }
      left -= rounds;
    }
  });
  const scored = comparisons.filter((c) => c.hasLabel && c.areDifferent && c.label0 !== 0.5);
  const bayes = scored.reduce((a, c) => a + Math.max(c.p0, 1 - c.p0), 0) / Math.max(1, scored.length);
  const population = scored.reduce((a, c) => a + (c.populationPick0 ? c.p0 : 1 - c.p0), 0) / Math.max(1, scored.length);
  return {
    params,
    seed,
    populationSeed,
    users,
    comparisons,
    summary: { users: users.length, comparisons: comparisons.length, scored: scored.length, bayesOptimalAccuracy: bayes, populationAccuracy: population },
  };
}

const COLOURS: Record<string, [number, number, number]> = {
  red: [220, 40, 40],
  orange: [240, 140, 30],
  yellow: [235, 210, 40],
  green: [50, 170, 70],
  blue: [50, 90, 220],
  purple: [140, 60, 190],
};
const BACKGROUNDS: Record<string, [number, number, number]> = { light: [235, 235, 228], dark: [35, 35, 45], warm: [245, 215, 170] };

function insideShape(shape: string, x: number, y: number): boolean {
  switch (shape) {
    case 'circle':
      return x * x + y * y <= 1;
    case 'square':
      return max(abs(x), abs(y)) <= 0.85;
    case 'triangle':
      return y <= 0.8 && y >= -0.9 && abs(x) <= (0.9 * (y + 0.9)) / 1.7;
    default:
      return abs(x) + abs(y) <= 1;
  }
}

/** Draws an image from its attributes; deterministic from the spec. */
export function renderImage(spec: ImageSpec, size: number): RgbImage {
  const rng = Rng.fromSeed(spec.seed);
  const a = spec.attrs;
  const shape = ATTRIBUTES.shape[a.shape];
  const texture = ATTRIBUTES.texture[a.texture];
  const style = ATTRIBUTES.style[a.style];
  const jitter = () => (rng.uniform() - 0.5) * 0.08;
  const base = COLOURS[ATTRIBUTES.colour[a.colour]].map((c) => max(0, Math.min(255, c + (rng.uniform() - 0.5) * 20)));
  const bg = BACKGROUNDS[ATTRIBUTES.background[a.background]];
  const layouts: Array<Array<[number, number, number]>> = [
    [[0.5, 0.5, 0.32]],
    [[0.28, 0.5, 0.19], [0.72, 0.5, 0.19]],
    [[0.28, 0.28, 0.15], [0.72, 0.28, 0.15], [0.28, 0.72, 0.15], [0.72, 0.72, 0.15]],
    Array.from({ length: 3 }, () => [0.2 + rng.uniform() * 0.6, 0.2 + rng.uniform() * 0.6, 0.14] as [number, number, number]),
  ];
  const objects = layouts[a.layout].map(([cx, cy, r]): [number, number, number] => [(cx + jitter()) * size, (cy + jitter()) * size, r * size]);
  const s = size / 64;
  const data = new Uint8Array(size * size * 3);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : round(v));
  // Scalar arithmetic only in this loop: it runs size^2 times per image.
  for (let py = 0; py < size; py++) {
    const shade = 1 - 0.08 * (py / size);
    for (let px = 0; px < size; px++) {
      let r = bg[0] * shade;
      let g = bg[1] * shade;
      let b = bg[2] * shade;
      for (let q = 0; q < objects.length; q++) {
        const [cx, cy, radius] = objects[q];
        const dx = (px + 0.5 - cx) / radius;
        const dy = (py + 0.5 - cy) / radius;
        if (!insideShape(shape, dx, dy)) continue;
        let m = 1;
        let add = 0;
        const tx = px / s;
        const ty = py / s;
        if (texture === 'striped' && floor((tx + ty) / 4) % 2 === 0) m = 0.55;
        else if (texture === 'checkered' && (floor(tx / 4) + floor(ty / 4)) % 2 === 0) m = 0.55;
        else if (texture === 'dotted' && ((tx % 6) - 3) ** 2 + ((ty % 6) - 3) ** 2 < 2.6) (m = 0.3), (add = 180);
        if (style === 'shaded') {
          const k = 1.25 - 0.55 * ((dy + 1) / 2);
          m *= k;
          add *= k;
        }
        r = base[0] * m + add;
        g = base[1] * m + add;
        b = base[2] * m + add;
        if (style === 'outlined') {
          const k = radius / max(1, radius - 2 * s);
          if (!insideShape(shape, dx * k, dy * k)) r = g = b = 15;
        }
      }
      const o = (py * size + px) * 3;
      data[o] = clamp(r);
      data[o + 1] = clamp(g);
      data[o + 2] = clamp(b);
    }
  }
  return { width: size, height: size, data };
}

/** The published Pick-a-Pic v2 columns, as pyarrow wrote them (created_at in ms here). */
export const PICKAPIC_WRITE_COLUMNS: ColumnSpec[] = [
  { name: 'are_different', type: 'BOOLEAN' },
  { name: 'best_image_uid', type: 'STRING' },
  { name: 'caption', type: 'STRING' },
  { name: 'created_at', type: 'TIMESTAMP' },
  { name: 'has_label', type: 'BOOLEAN' },
  { name: 'image_0_uid', type: 'STRING' },
  { name: 'image_0_url', type: 'STRING' },
  { name: 'image_1_uid', type: 'STRING' },
  { name: 'image_1_url', type: 'STRING' },
  { name: 'jpg_0', type: 'BYTE_ARRAY', statistics: false },
  { name: 'jpg_1', type: 'BYTE_ARRAY', statistics: false },
  { name: 'label_0', type: 'DOUBLE' },
  { name: 'label_1', type: 'DOUBLE' },
  { name: 'model_0', type: 'STRING' },
  { name: 'model_1', type: 'STRING' },
  { name: 'ranking_id', type: 'INT64' },
  { name: 'user_id', type: 'INT64' },
  { name: 'num_example_per_prompt', type: 'INT64' },
  { name: '__index_level_0__', type: 'INT64' },
];

/** A row of the published schema, ready for ParquetFileWriter. */
export interface PickapicWriteRow {
  are_different: boolean;
  best_image_uid: string;
  caption: string;
  created_at: Date;
  has_label: boolean;
  image_0_uid: string;
  image_0_url: string;
  image_1_uid: string;
  image_1_url: string;
  jpg_0: Uint8Array;
  jpg_1: Uint8Array;
  label_0: number;
  label_1: number;
  model_0: string;
  model_1: string;
  ranking_id: bigint;
  user_id: bigint;
  num_example_per_prompt: bigint;
  __index_level_0__: bigint;
}

export function toColumns(rows: readonly PickapicWriteRow[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const c of PICKAPIC_WRITE_COLUMNS) out[c.name] = rows.map((r) => r[c.name as keyof PickapicWriteRow]);
  return out;
}

/** Builds the published row of a simulated comparison, given its encoded images. */
export function pickapicRow(sim: SynthpickSimulation, c: SimComparison, jpg0: Uint8Array, jpg1: Uint8Array, index: number): PickapicWriteRow {
  const best = c.label0 === 1 ? c.image0.uid : c.label0 === 0 ? c.image1.uid : '';
  return {
    are_different: c.areDifferent,
    best_image_uid: best,
    caption: c.prompt,
    created_at: new Date(Date.UTC(2023, 4, 1) + c.rankingId * 61_000),
    has_label: c.hasLabel,
    image_0_uid: c.image0.uid,
    image_0_url: `https://synthpick.invalid/${c.image0.uid}.png`,
    image_1_uid: c.image1.uid,
    image_1_url: `https://synthpick.invalid/${c.image1.uid}.png`,
    jpg_0: jpg0,
    jpg_1: jpg1,
    label_0: c.label0,
    label_1: 1 - c.label0,
    model_0: MODELS[c.image0.attrs.style],
    model_1: MODELS[c.image1.attrs.style],
    ranking_id: BigInt(c.rankingId),
    user_id: BigInt(sim.users[c.user].userId),
    num_example_per_prompt: BigInt(c.numExamplePerPrompt),
    __index_level_0__: BigInt(index),
  };
}

/** Encodes an image as the style's "model" would: the shaded model writes JPEG, the others PNG. */
export async function encodeSpec(spec: ImageSpec, size: number): Promise<Uint8Array> {
  return encodeRgb(renderImage(spec, size), spec.attrs.style === 2 ? 'jpeg' : 'png', 92);
}

export interface GenerateOptions {
  preset?: SynthpickPreset;
  seed?: number;
  /** Seed of the population (global taste, cluster centres); default: `seed`. See simulateSynthpick. */
  populationSeed?: number;
  outDir: string;
  /** Overrides of the preset's parameters. */
  params?: Partial<SynthpickParams>;
  onProgress?: (done: number, total: number) => void;
}

export interface GenerateResult {
  readonly files: string[];
  readonly truthFile: string;
  readonly summary: SynthpickSummary;
  readonly rows: number;
  readonly images: number;
}

export function truthOf(sim: SynthpickSimulation, preset: string): SynthpickTruth {
  return {
    kind: 'synthpick',
    preset,
    seed: sim.seed,
    populationSeed: sim.populationSeed,
    params: sim.params,
    attributes: ATTRIBUTES,
    summary: sim.summary,
    users: sim.users.map((u) => ({ user_id: String(u.userId), cluster: u.cluster })),
    comparisons: sim.comparisons.map((c) => ({ ranking_id: String(c.rankingId), user_id: String(sim.users[c.user].userId), p0: c.p0, population_pick0: c.populationPick0 })),
    images: Object.fromEntries(sim.comparisons.flatMap((c) => [c.image0, c.image1]).map((s) => [s.uid, GROUPS.map((g) => s.attrs[g])])),
  };
}

/** A preset's parameters with overrides, refusing unknown presets and parameters by name. */
export function synthpickParams(presetName: string, overrides: Partial<SynthpickParams> = {}): SynthpickParams {
  const preset = (PRESETS as Record<string, SynthpickParams>)[presetName];
  if (!preset) throw new Error(`unknown synthpick preset '${presetName}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const unknown = Object.keys(overrides).filter((k) => !(k in preset) && !OPTIONAL_PARAMS.includes(k));
  if (unknown.length) throw new SynthpickParamsError(`unknown parameter(s) ${unknown.join(', ')} (known: ${[...Object.keys(preset), ...OPTIONAL_PARAMS].join(', ')})`);
  return { ...preset, ...overrides };
}

/**
 * Writes the synthetic shards (Pick-a-Pic v2 columns, named `synthpick-NNNNN-of-NNNNN.parquet`:
 * one pool of comparisons, no upstream split) and the truth sidecar into `outDir`. The import sees
 * the sidecar and splits the pool by-comparison unless told otherwise.
 */
export async function generateSynthpick(opts: GenerateOptions): Promise<GenerateResult> {
  const presetName = opts.preset ?? 'default';
  const params = synthpickParams(presetName, opts.params);
  const seed = opts.seed ?? 42;
  const sim = simulateSynthpick(params, seed, opts.populationSeed ?? seed);
  await fsp.mkdir(opts.outDir, { recursive: true });
  const encoded = new Map<string, Uint8Array>();
  const specs = new Map<string, ImageSpec>();
  for (const c of sim.comparisons) for (const s of [c.image0, c.image1]) specs.set(s.uid, s);
  let done = 0;
  await mapLimit([...specs.values()], 4, async (s) => {
    encoded.set(s.uid, await encodeSpec(s, params.imageSize));
    if (++done % 200 === 0) opts.onProgress?.(done, specs.size);
  });
  const files: string[] = [];
  const perShard = Math.ceil(sim.comparisons.length / params.shards);
  for (let k = 0; k < params.shards; k++) {
    const part = sim.comparisons.slice(k * perShard, (k + 1) * perShard);
    if (!part.length) break;
    const file = path.join(opts.outDir, `synthpick-${String(k).padStart(5, '0')}-of-${String(params.shards).padStart(5, '0')}.parquet`);
    const w = new ParquetFileWriter(file, PICKAPIC_WRITE_COLUMNS, { synthpick: JSON.stringify({ preset: presetName, seed, populationSeed: sim.populationSeed }) });
    for (let s = 0; s < part.length; s += params.rowGroupRows) {
      const rows = part.slice(s, s + params.rowGroupRows).map((c, i) => pickapicRow(sim, c, encoded.get(c.image0.uid)!, encoded.get(c.image1.uid)!, k * perShard + s + i));
      w.writeRowGroup(toColumns(rows));
    }
    w.finish();
    files.push(file);
  }
  const truthFile = path.join(opts.outDir, TRUTH_FILE);
  await fsp.writeFile(truthFile, JSON.stringify(truthOf(sim, presetName)) + '\n');
  return { files, truthFile, summary: sim.summary, rows: sim.comparisons.length, images: specs.size };
}
