/**
 * A run's learning curve, read back from its metrics.jsonl (training-log.ts writes one line per
 * update and one per validation): the training loss, its terms and the training-batch accuracy
 * averaged over windows of updates, and every validation point. A resumed run repeats the steps
 * after its checkpoint; the line written last for a step wins, as it is the one the weights went
 * through. A line that does not parse (a run killed mid-write) is counted and skipped, never fatal.
 */

/** The training updates `fromStep..toStep` (inclusive), averaged with equal weight per update. */
export interface CurveWindow {
  fromStep: number;
  toStep: number;
  updates: number;
  loss: number;
  /** Training-batch accuracy (examples whose score sign matched their label, during training: dropout on). */
  accuracy: number;
  /** Each loss term's mean ('loss/base', 'loss/contrastive', ...). */
  terms: Record<string, number>;
}

export interface CurvePoint {
  step: number;
  accuracy: number;
  ci95: [number, number];
  n: number;
}

export interface LearningCurve {
  stage?: number;
  windows: CurveWindow[];
  validation: CurvePoint[];
  /** Lines that did not parse as a metrics record. */
  skipped: number;
}

interface UpdateRecord {
  stage?: number;
  step: number;
  loss: number;
  accuracy: number;
  [term: string]: unknown;
}

const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function checkWindow(every: number): number {
  if (!Number.isInteger(every) || every < 1) throw new Error(`the learning curve's window must be a positive number of updates, got ${every}`);
  return every;
}

/**
 * The curve of metrics.jsonl's text, in windows of `every` updates (1..every, every+1..2every, ...);
 * `every` may be chosen from the run's last update (a function of it), so a caller sizing windows
 * to the run parses the file once.
 */
export function learningCurve(text: string, every: number | ((lastStep: number) => number)): LearningCurve {
  if (typeof every === 'number') checkWindow(every);
  const updates = new Map<number, UpdateRecord>();
  const validation = new Map<number, CurvePoint>();
  let stage: number | undefined;
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      skipped++;
      continue;
    }
    if (!isNum(r.step) || !isNum(r.accuracy)) {
      skipped++;
      continue;
    }
    if (isNum(r.stage)) stage = r.stage;
    if (r.split === 'validation') {
      const ci = Array.isArray(r.ci95) && r.ci95.length === 2 && r.ci95.every(isNum) ? (r.ci95 as [number, number]) : ([NaN, NaN] as [number, number]);
      validation.set(r.step, { step: r.step, accuracy: r.accuracy, ci95: ci, n: isNum(r.n) ? r.n : NaN });
    } else if (isNum(r.loss)) {
      updates.set(r.step, r as UpdateRecord);
    } else {
      skipped++;
    }
  }
  const window = typeof every === 'number' ? every : checkWindow(every(Math.max(0, ...updates.keys())));
  const byWindow = new Map<number, UpdateRecord[]>();
  for (const u of updates.values()) {
    const w = Math.floor((u.step - 1) / window);
    if (!byWindow.has(w)) byWindow.set(w, []);
    byWindow.get(w)!.push(u);
  }
  const windows = [...byWindow.entries()]
    .sort(([a], [b]) => a - b)
    .map(([w, rs]) => {
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
      const termNames = [...new Set(rs.flatMap((r) => Object.keys(r).filter((k) => k.startsWith('loss/'))))].sort();
      // A term averages over the updates that logged it.
      const terms = Object.fromEntries(termNames.map((k) => [k, mean(rs.map((r) => r[k]).filter(isNum))]));
      return { fromStep: w * window + 1, toStep: Math.max(...rs.map((r) => r.step)), updates: rs.length, loss: mean(rs.map((r) => r.loss)), accuracy: mean(rs.map((r) => r.accuracy)), terms };
    });
  return { ...(stage !== undefined && { stage }), windows, validation: [...validation.values()].sort((a, b) => a.step - b.step), skipped };
}
