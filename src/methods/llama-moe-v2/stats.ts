// LLaMA-MoE v2 (arXiv 2411.15708), residual MLP MoE: "set aside the most-shared neurons to form an
// always-activated shared expert". Which neurons are most shared is read from each neuron's activation
// statistics over the calibration tokens, taken on the GPU from the captured FFN inputs x (LaDiMo's
// capture, src/methods/ladimo/capture.ts) block by block: a = silu(x·Wgᵀ) ⊙ (x·Wuᵀ), the down_proj input.
//   magnitude_j = mean_t |a_tj|
//   frequency_j = share of tokens with |a_tj| > τ,  τ = mean_{t,j} |a_tj| (the layer's mean magnitude)
// Why |a| > τ and not a > 0: in SwiGLU the sign of a is the sign of the up projection, which is symmetric,
// so a > 0 holds for about half the tokens of every neuron and says nothing about use; a threshold at the
// layer's own mean magnitude needs no tuned constant and is comparable across layers and models. τ needs
// a first pass (magnitudes), the counts a second one; both recompute a on the GPU, nothing per token
// reaches the host.
import type { Tensor } from '../../gpu/tensor.ts';
import { swiglu } from '../../ops/activation.ts';
import { matmul } from '../../ops/matmul.ts';
import { neuronStats } from '../../ops/neuron-stats.ts';

export interface NeuronStats {
  /** tokens the statistics are over */
  n: number;
  /** τ: the firing threshold on |a| (the mean |a| over all tokens and neurons) */
  threshold: number;
  /** share of tokens with |a_j| > τ: [I] */
  frequency: Float64Array;
  /** mean |a_j|: [I] */
  magnitude: Float64Array;
}

/** Rows of x per GPU block: bounds the [block, I] scratch. */
const BLOCK = 256;

/** Statistics of the FFN (gate_proj, up_proj: [I, H] on the GPU) over the captured inputs x [n, H]. */
export async function neuronStatistics(x: Tensor, ffn: { gate_proj: Tensor; up_proj: Tensor }, block = BLOCK): Promise<NeuronStats> {
  const [n, H] = x.shape;
  const I = ffn.gate_proj.shape[0];
  if (ffn.gate_proj.shape[1] !== H || ffn.up_proj.shape[0] !== I || ffn.up_proj.shape[1] !== H) {
    throw new Error(`neuronStatistics: gate_proj ${ffn.gate_proj.shape} and up_proj ${ffn.up_proj.shape} must both be [I, ${H}] for inputs x [${n}, ${H}]`);
  }
  if (n < 1) throw new Error('neuronStatistics: no captured tokens');
  const gpu = x.gpu;
  const B = Math.min(block, n);
  const xb = gpu.tensor([B, H], 'f32', 'v2.stats.x');
  const [g, u, a] = ['g', 'u', 'a'].map((s) => gpu.tensor([B, I], 'f32', `v2.stats.${s}`));
  const S = gpu.tensor([2, I], 'f32', 'v2.stats.S');
  const pass = async (thr: number): Promise<Float32Array> => {
    for (let r = 0; r < n; r += B) {
      const T = Math.min(B, n - r);
      const [xt, gt, ut, at] = [xb, g, u, a].map((t) => t.rows(T));
      gpu.copyRows(x, r, xt);
      matmul(xt, ffn.gate_proj, { transB: true, out: gt });
      matmul(xt, ffn.up_proj, { transB: true, out: ut });
      swiglu(gt, ut, { out: at });
      neuronStats(at, S, { thr, first: r === 0 });
    }
    return (await S.read()) as Float32Array;
  };
  try {
    const first = await pass(0);
    const magnitude = Float64Array.from(first.subarray(I), (s) => s / n);
    const threshold = magnitude.reduce((s, m) => s + m, 0) / I;
    const second = await pass(threshold);
    const frequency = Float64Array.from(second.subarray(0, I), (c) => c / n);
    return { n, threshold, frequency, magnitude };
  } finally {
    for (const t of [xb, g, u, a, S]) t.release();
  }
}
