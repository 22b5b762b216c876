// LLaMA-MoE v2 (arXiv 2411.15708), router initialisation for the attention MoE: its router reads the attention input (the
// input_layernorm output), so hidden clustering needs those states. They are captured through the
// forward's attention gate slot (LlamaModel.attnGate), which sees them before o_proj; the capture passes
// the attention output through unchanged (or to the gate already set there).
import type { LlamaModel } from '../../model/llama.ts';
import type { RunSpec } from '../../state/spec.ts';
import { captureRows } from '../ladimo/capture.ts';
import { initRouterV2 } from './router.ts';

/** Each layer's attention inputs over `windows` (each from position 0), the first `rows` of them: host [rows, dim]. */
export async function captureAttentionInputs(model: LlamaModel, windows: readonly number[][], layers: readonly number[], rows: number): Promise<Map<number, Float32Array>> {
  const { gpu } = model;
  const H = model.config.dim;
  const total = captureRows(windows, rows);
  if (total < 1) throw new Error('attention capture: no tokens');
  const bufs = new Map(layers.map((l) => [l, gpu.tensor([total, H], 'f32', `attn_capture.${l}`)]));
  const saved = new Map(layers.map((l) => [l, model.attnGate[l]]));
  let filled = 0;
  try {
    for (const [l, buf] of bufs) {
      const prev = saved.get(l);
      // records the copy at the current row while the forward records this layer
      model.attnGate[l] = (xn, att) => {
        gpu.copy(xn, buf, filled * H);
        return prev?.(xn, att) ?? att;
      };
    }
    for (let w = 0; w < windows.length && filled < total; w++) {
      model.reset();
      for (let start = 0; start < windows[w].length && filled < total; start += model.chunk) {
        const ids = windows[w].slice(start, Math.min(start + model.chunk, start + total - filled));
        model.forward(ids);
        filled += ids.length;
      }
    }
    const out = new Map<number, Float32Array>();
    for (const [l, buf] of bufs) out.set(l, (await buf.read()) as Float32Array);
    return out;
  } finally {
    for (const [l, prev] of saved) model.attnGate[l] = prev;
    for (const buf of bufs.values()) buf.release();
  }
}

/** The attention routers [nKvHeads, dim] of `layers` by v2.routerInit; layer l draws from seed + l. */
export async function attentionRouters(
  model: LlamaModel, windows: readonly number[][], layers: readonly number[], spec: Pick<RunSpec, 'v2.routerInit' | 'v2.routerTokens' | 'seed'>,
): Promise<Map<number, Float32Array>> {
  const { dim: H, nKvHeads: G } = model.config;
  const method = spec['v2.routerInit'];
  const states = method === 'random' ? null : await captureAttentionInputs(model, windows, layers, spec['v2.routerTokens']);
  return new Map(layers.map((l) => [l, initRouterV2({ method, nExperts: G, H, X: states?.get(l), seed: spec.seed + l })]));
}
