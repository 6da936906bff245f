/**
 * hyparquet and hyparquet-writer are ES modules only, while this workspace compiles to CommonJS.
 * Node >= 20.19 loads them with require(esm) (jest transpiles them, see jest.config.js); the
 * types come from their ESM entry points through `resolution-mode`.
 */
import type * as Hyparquet from 'hyparquet' with { 'resolution-mode': 'import' };
import type * as HyparquetWriter from 'hyparquet-writer' with { 'resolution-mode': 'import' };

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const hyparquet = require('hyparquet') as typeof Hyparquet;
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const hyparquetWriter = require('hyparquet-writer') as typeof HyparquetWriter & {
  fileWriter(filename: string): HyparquetWriter.Writer;
};
export type { AsyncBuffer, FileMetaData, SchemaElement, ColumnChunk } from 'hyparquet' with { 'resolution-mode': 'import' };
export type { ColumnSource, Writer } from 'hyparquet-writer' with { 'resolution-mode': 'import' };
