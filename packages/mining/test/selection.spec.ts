/** The layer and head selections of the mining options, resolved against a text model's depth and head count. */
import { resolveHeads, resolveLayers } from '../src/selection';

describe('layer and head selection', () => {
  it('resolves all, lists and negative layer indices; rejects out-of-range and repeats', () => {
    expect(resolveLayers('all', 3)).toEqual([0, 1, 2]);
    expect(resolveLayers([-1, 0], 3)).toEqual([2, 0]);
    expect(() => resolveLayers([3], 3)).toThrow(/outside the text model's 3 layers/);
    expect(() => resolveLayers([1, -2], 3)).toThrow(/twice/);
    expect(resolveHeads('all', 4)).toBeNull();
    expect(resolveHeads([1, 3], 4)).toEqual([1, 3]);
    expect(() => resolveHeads([4], 4)).toThrow(/outside/);
  });
});
