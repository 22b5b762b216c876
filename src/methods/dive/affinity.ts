// DIVE (arXiv 2506.09351), "Domain Affinity Mining", the GPU half: prune the model with each of the D
// calibration sets (FLAP, every layer, kept ratio r) and evaluate each pruned model on each of the D
// evaluation sets, giving P [D, D], P_ij = perplexity on set j of the model pruned with set i. This file
// computes one row i; run.ts stacks them (keeping each, so a stopped run resumes at the next row). The
// normalisation, correlation and clustering of P are pure math (cluster.ts).
import type { LlamaModel } from '../../model/llama.ts';
import type { DenseFfn } from '../ladimo/construct.ts';
import { flapLayer } from './construct.ts';
import { pplPerDomain } from './evaluate.ts';
import type { ChannelStats } from './importance.ts';

/**
 * Row i of P: perplexity on each of `evalSets` of the model pruned with calibration set i.
 * statsOfI[l]: layer l's statistics on set i; ffns[l]: layer l's dense FFN.
 */
export async function affinityRow(
  model: LlamaModel, ffns: readonly DenseFfn[], statsOfI: readonly ChannelStats[], ratio: number, evalSets: readonly number[][][],
): Promise<number[]> {
  if (statsOfI.length !== ffns.length) throw new Error(`affinity: statistics for ${statsOfI.length} layers, ${ffns.length} FFNs`);
  return pplPerDomain(model, ffns.map((f, l) => flapLayer(f, statsOfI[l], ratio)), evalSets);
}
