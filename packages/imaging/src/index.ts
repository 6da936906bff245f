/**
 * @userpref/imaging: the image operations the Hugging Face image processors run, bit-exact with
 * Pillow on 8-bit RGB, in one place for every backbone and scorer plugin (IDEFICS2, Idefics3 /
 * SmolVLM, CLIP-family scorers).
 */
export { resizePil, filterFromPil, PIL_RESAMPLE } from './resize';
export type { PilFilter } from './resize';
export { centerCrop } from './crop';
