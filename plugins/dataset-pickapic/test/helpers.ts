/** Shared test helpers: fixture paths, the Python-made expectations, temporary directories. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { memoryLogger } from '@userpref/core';
import type { PickapicOptions } from '../src/dataset';

export const FIXTURES = path.join(__dirname, 'fixtures');
export const fixture = (name: string) => path.join(FIXTURES, name);

export interface ExpectedRow {
  ranking_id: number;
  user_id: string;
  caption: string;
  label_0: number;
  has_label: boolean;
  are_different: boolean;
  image_0_uid: string;
  jpg_0_sha256: string;
  jpg_1_sha256: string;
  jpg_0_len: number;
  skip: string | null;
}
export interface Expected {
  columns: string[];
  rows: ExpectedRow[];
  reconciliation: { read: number; kept: number; skipped: Record<string, number> };
  kept: Array<{ ranking_id: number; user_id: string; prompt: string; image0: string; image1: string; label0: number; liked: string; disliked: string }>;
  ties: number[];
  distinct_kept_images: number;
  images: Record<string, { name: string; format: string; width: number; height: number; left: number[]; right: number[] }>;
  pyarrow_row_groups: number;
  duckdb_row_groups: number;
  paper: Array<{ user_id: string; prompt: string; label0: number; image0: string; image1: string; liked: string[]; disliked: string[]; reference_prompts: string[] }>;
}
export const expected: Expected = JSON.parse(fs.readFileSync(fixture('expected.json'), 'utf8'));

const made: string[] = [];
/** A fresh temporary directory, removed after the test file. */
export function tmpDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `userpref-pickapic-${label}-`));
  made.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

export function quietLogger() {
  return memoryLogger();
}

export function options(p: string, extra: Partial<PickapicOptions> = {}): PickapicOptions {
  return { path: p, refPairNum: 8, tooFewReferences: 'skip', redrawReferencesEachEpoch: false, imageSize: 512, tiePolicy: 'drop', ...extra };
}
