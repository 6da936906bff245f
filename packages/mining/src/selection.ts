/**
 * The layer and head selections of the mining options, resolved against the probe's text model
 * (its numLayers / numHeads) into the indices an AttentionSelection names.
 */

/** Resolves a layer selection ('all' or indices, negatives counting from the end) against a depth. */
export function resolveLayers(selection: 'all' | readonly number[], numLayers: number): number[] {
  if (selection === 'all') return [...Array(numLayers).keys()];
  if (selection.length === 0) throw new Error('layers: empty selection');
  const out = selection.map((l) => {
    const i = l < 0 ? numLayers + l : l;
    if (!(Number.isInteger(l) && i >= 0 && i < numLayers)) throw new Error(`layers: ${l} is outside the text model's ${numLayers} layers`);
    return i;
  });
  if (new Set(out).size !== out.length) throw new Error(`layers: ${JSON.stringify(selection)} names a layer twice`);
  return out;
}

/** Resolves a head selection ('all' or indices) against the head count; null means all. */
export function resolveHeads(selection: 'all' | readonly number[], numHeads: number): number[] | null {
  if (selection === 'all') return null;
  if (selection.length === 0) throw new Error('heads: empty selection');
  for (const h of selection) if (!(Number.isInteger(h) && h >= 0 && h < numHeads)) throw new Error(`heads: ${h} is outside the text model's ${numHeads} heads`);
  if (new Set(selection).size !== selection.length) throw new Error(`heads: ${JSON.stringify(selection)} names a head twice`);
  return [...selection];
}
