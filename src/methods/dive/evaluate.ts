// Perplexity of a constructed model on each domain's held-out windows (DIVE arXiv 2506.09351 reports
// perplexity before and after retraining; this stage measures it before). Every layer's FFN slot takes a
// MoE block built from its ConstructedLayer; the dense slots are back when this returns.
import type { LlamaModel } from '../../model/llama.ts';
import { convertLayers } from '../../moe/block.ts';
import { perplexity } from '../../eval/perplexity.ts';
import { releaseLayer, uploadLayer, type ConstructedLayer } from './construct.ts';

/** ppl of the model with `layers` (one per model layer; null: the dense model) in place of its FFNs, on each set of windows. */
export async function pplPerDomain(model: LlamaModel, layers: readonly ConstructedLayer[] | null, evalSets: readonly number[][][]): Promise<number[]> {
  if (!layers) return measure(model, evalSets);
  if (layers.length !== model.config.nLayers) throw new Error(`construction: ${layers.length} layers for a model of ${model.config.nLayers}`);
  const moe = new Map(layers.map((L, l) => [l, uploadLayer(model.gpu, L)]));
  const blocks = convertLayers(model, moe);
  try {
    return await measure(model, evalSets);
  } finally {
    for (let l = 0; l < layers.length; l++) model.restoreDense(l);
    for (const b of blocks.values()) b.release();
    for (const L of moe.values()) releaseLayer(L);
  }
}

async function measure(model: LlamaModel, evalSets: readonly number[][][]): Promise<number[]> {
  const out: number[] = [];
  for (const windows of evalSets) out.push((await perplexity(model, windows)).ppl);
  return out;
}
