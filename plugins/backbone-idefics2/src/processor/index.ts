/**
 * Model inputs for the IDEFICS2 backbone (SPEC §2): token ids of the chat sequence of a
 * PreferenceExample, image pixel values, and padded batches. See ./README.md.
 */
export { Idefics2Processor } from './processor';
export type { Idefics2ProcessorOptions, Idefics2SpecialTokens, ImageSlot, ExampleEncoding, CollatedBatch, ChatMessage } from './processor';
export { processImages, processImage, resizeBilinearPil, idefics2ResizeTarget, parseImageProcessorConfig } from './image';
export type { ImageProcessorConfig, PixelBatch } from './image';
