// LaDiMo (arXiv 2408.04278) §4.2 and §5.1, stage 1 "Capture": run the dense model over calibration text
// and keep, for each layer to be converted, the FFN's input x (the post_attention_layernorm output,
// "the training data should be composed of inputs for the FFN, namely hidden states") and its output
// f(x), the distillation target. Both stay on the GPU, [tokens, H] per layer, filled chunk by chunk
// through the forward's FFN taps, so nothing passes through one giant host array. capture-stage.ts streams
// them to the checkpoint folder as they are produced.
import type { Tensor } from '../../gpu/tensor.ts';
import type { LlamaModel } from '../../model/llama.ts';

export interface CapturedLayer {
  layer: number;
  /** FFN inputs, [tokens, H] */
  x: Tensor;
  /** FFN outputs f(x), [tokens, H] */
  fx: Tensor;
}

export interface CaptureResult {
  layers: Map<number, CapturedLayer>;
  tokens: number;
}

/** Rows a capture holds per layer: the budget, or all the windows' tokens when they are fewer. */
export function captureRows(windows: readonly number[][], budget: number): number {
  return Math.min(budget, windows.reduce((n, w) => n + w.length, 0));
}

/** Where a capture continues: the first `windows` done, their `tokens` rows already in `layers`. */
export interface CaptureFrom {
  windows: number;
  tokens: number;
  layers: Map<number, CapturedLayer>;
}

export interface CaptureOptions {
  from?: CaptureFrom;
  /** after each window, once its work is submitted (not yet run: wait on the GPU before timing it); throwing stops the capture (its tensors are freed) */
  onWindow?: (at: CaptureFrom & { total: number }) => Promise<void> | void;
}

/**
 * Runs `windows` (token ids, each window from position 0) until `budget` tokens are captured for each
 * layer in `layers`. The model must have its dense FFNs in those layers.
 */
export async function captureFfn(
  model: LlamaModel,
  windows: readonly number[][],
  layers: readonly number[],
  budget: number,
  opts: CaptureOptions = {},
): Promise<CaptureResult> {
  const H = model.config.dim;
  const total = captureRows(windows, budget);
  if (total < 1) throw new Error('capture: no calibration tokens');
  const out = opts.from?.layers ?? new Map<number, CapturedLayer>(
    layers.map((l) => [l, { layer: l, x: model.gpu.tensor([total, H], 'f32', `capture.${l}.x`), fx: model.gpu.tensor([total, H], 'f32', `capture.${l}.fx`) }]),
  );
  let filled = opts.from?.tokens ?? 0;
  try {
    for (let w = opts.from?.windows ?? 0; w < windows.length && filled < total; w++) {
      model.reset();
      for (let start = 0; start < windows[w].length && filled < total; start += model.chunk) {
        const ids = windows[w].slice(start, Math.min(start + model.chunk, start + total - filled));
        model.forward(ids, (l, x, fx) => {
          const c = out.get(l);
          if (!c) return;
          model.gpu.copy(x, c.x, filled * H);
          model.gpu.copy(fx, c.fx, filled * H);
        });
        filled += ids.length;
      }
      await model.gpu.flush();
      await opts.onWindow?.({ windows: w + 1, tokens: filled, layers: out, total });
    }
  } catch (e) {
    for (const c of out.values()) [c.x, c.fx].forEach((t) => t.release());
    throw e;
  }
  return { layers: out, tokens: filled };
}
