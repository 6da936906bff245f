import { learningCurve } from '../src';

const line = (o: object) => JSON.stringify(o);

describe('learningCurve', () => {
  it('averages updates in windows and keeps the validation points (hand-computed)', () => {
    const text = [
      line({ stage: 1, step: 0, split: 'validation', accuracy: 0.5, ci95: [0.4, 0.6], n: 10 }),
      line({ stage: 1, step: 1, epoch: 0, loss: 2, accuracy: 0.25, lr: 0.1, 'loss/base': 0.5, 'loss/contrastive': 1.5 }),
      line({ stage: 1, step: 2, epoch: 0, loss: 1, accuracy: 0.75, lr: 0.1, 'loss/base': 0.25, 'loss/contrastive': 0.75 }),
      line({ stage: 1, step: 2, split: 'validation', accuracy: 0.7, ci95: [0.6, 0.8], n: 10 }),
      line({ stage: 1, step: 3, epoch: 0, loss: 0.5, accuracy: 1, lr: 0.1, 'loss/base': 0.125, 'loss/contrastive': 0.375 }),
      '',
    ].join('\n');
    expect(learningCurve(text, 2)).toEqual({
      stage: 1,
      windows: [
        { fromStep: 1, toStep: 2, updates: 2, loss: 1.5, accuracy: 0.5, terms: { 'loss/base': 0.375, 'loss/contrastive': 1.125 } },
        { fromStep: 3, toStep: 3, updates: 1, loss: 0.5, accuracy: 1, terms: { 'loss/base': 0.125, 'loss/contrastive': 0.375 } },
      ],
      validation: [
        { step: 0, accuracy: 0.5, ci95: [0.4, 0.6], n: 10 },
        { step: 2, accuracy: 0.7, ci95: [0.6, 0.8], n: 10 },
      ],
      skipped: 0,
    });
  });

  it('takes the line written last for a step a resumed run repeated, and skips lines that do not parse', () => {
    const text = [
      line({ stage: 2, step: 1, loss: 4, accuracy: 0 }),
      line({ stage: 2, step: 2, loss: 9, accuracy: 0 }), // lost: the run resumed from step 1's checkpoint
      line({ stage: 2, step: 2, loss: 2, accuracy: 1 }),
      '{"stage":2,"step":3,"lo', // killed mid-write
      line({ note: 'no step' }),
    ].join('\n');
    const c = learningCurve(text, 5);
    expect(c.windows).toEqual([{ fromStep: 1, toStep: 2, updates: 2, loss: 3, accuracy: 0.5, terms: {} }]);
    expect(c.skipped).toBe(2);
    expect(c.stage).toBe(2);
  });

  it('averages a loss term over the updates that logged it', () => {
    const text = [line({ step: 1, loss: 1, accuracy: 1, 'loss/pull': 0.5 }), line({ step: 2, loss: 3, accuracy: 0 })].join('\n');
    expect(learningCurve(text, 2).windows[0].terms).toEqual({ 'loss/pull': 0.5 });
  });

  it('sizes the window from the last update when given a function of it', () => {
    const text = [1, 2, 3, 4, 5, 6].map((step) => line({ step, loss: step, accuracy: 0 })).join('\n');
    const seen: number[] = [];
    const c = learningCurve(text, (last) => (seen.push(last), last / 2));
    expect(seen).toEqual([6]);
    expect(c.windows.map((w) => [w.fromStep, w.toStep, w.loss])).toEqual([[1, 3, 2], [4, 6, 5]]);
    expect(() => learningCurve(text, () => 0)).toThrow(/positive number of updates, got 0/);
  });

  it('refuses a window that is not a positive whole number of updates', () => {
    expect(() => learningCurve('', 0)).toThrow(/positive number of updates, got 0/);
    expect(() => learningCurve('', 2.5)).toThrow(/got 2.5/);
  });
});
