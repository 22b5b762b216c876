// DIVE (arXiv 2506.09351), "Domain Affinity Mining", the GPU half: prune the model with each of the D
// calibration sets (FLAP, every layer, kept ratio r) and evaluate each pruned model on each of the D
// evaluation sets, giving P [D, D], P_ij = perplexity on set j of the model pruned with set i. The
// normalisation, correlation and clustering of P are pure math (cluster.ts).
import type { LlamaModel } from '../../model/llama.ts';
import type { DenseFfn } from '../ladimo/construct.ts';
import { flapLayer } from './construct.ts';
import { pplPerDomain } from './evaluate.ts';
import type { ChannelStats } from './importance.ts';

/**
 * P [D, D] (row i: pruned with calibration set i). domainStats[i][l]: layer l's statistics on set i;
 * ffns[l]: layer l's dense FFN; evalSets[j]: set j's held-out windows.
 */
export async function affinityMatrix(
  model: LlamaModel,
  ffns: readonly DenseFfn[],
  domainStats: readonly (readonly ChannelStats[])[],
  ratio: number,
  evalSets: readonly number[][][],
  onRow?: (i: number, row: number[]) => void,
): Promise<Float64Array> {
  const D = domainStats.length;
  if (evalSets.length !== D) throw new Error(`affinity: ${D} calibration sets but ${evalSets.length} evaluation sets`);
  const P = new Float64Array(D * D);
  for (let i = 0; i < D; i++) {
    const row = await pplPerDomain(model, ffns.map((f, l) => flapLayer(f, domainStats[i][l], ratio)), evalSets);
    P.set(row, i * D);
    onRow?.(i, row);
  }
  return P;
}
