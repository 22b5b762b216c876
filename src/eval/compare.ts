// How far a (partially) MoEfied model is from its dense original on held-out text (LaDiMo §5.2–5.3):
// perplexity of each, the share of positions where both predict the same next token (agreement), and
// the mean KL(p_dense ‖ p_moe) of their next-token distributions. Both run in the same engine on the
// same windows: one model whose FFN blocks the caller switches (compareDenseMoe), or two models, the MoE
// one trained apart from its dense original (compareModels).
import type { LlamaModel } from '../model/llama.ts';

export interface Comparison {
  pplDense: number;
  pplMoe: number;
  /** share of predicted positions where argmax(dense) = argmax(moe) */
  agreement: number;
  /** mean over positions of KL(p_dense ‖ p_moe), nats */
  kl: number;
  tokens: number;
}

/** Logits [T, V] of one window from position 0, chunk by chunk. */
async function windowLogits(model: LlamaModel, ids: readonly number[]): Promise<Float32Array> {
  const V = model.config.vocabSize;
  const out = new Float32Array(ids.length * V);
  model.reset();
  for (let i = 0; i < ids.length; i += model.chunk) {
    out.set((await model.forward(ids.slice(i, i + model.chunk)).read()) as Float32Array, i * V);
  }
  return out;
}

/** log-softmax of one row in float64. */
function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

function argmax(a: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[b]) b = i;
  return b;
}

/**
 * Scores every window with `useDense()` then `useMoe()` applied to the model. Position t of a window
 * predicts token t+1, as in perplexity().
 */
export function compareDenseMoe(
  model: LlamaModel,
  windows: readonly number[][],
  useDense: () => void,
  useMoe: () => void,
  onProgress?: (done: number, total: number) => void,
): Promise<Comparison> {
  return compareLogits(model.config.vocabSize, windows, (ids) => {
    useDense();
    return windowLogits(model, ids);
  }, (ids) => {
    useMoe();
    return windowLogits(model, ids);
  }, onProgress);
}

/** compareDenseMoe for two models of one vocabulary: `dense` the original, `moe` the converted one. */
export function compareModels(dense: LlamaModel, moe: LlamaModel, windows: readonly number[][], onProgress?: (done: number, total: number) => void): Promise<Comparison> {
  if (dense.config.vocabSize !== moe.config.vocabSize) throw new Error(`compareModels: vocabularies of ${dense.config.vocabSize} and ${moe.config.vocabSize} tokens`);
  return compareLogits(dense.config.vocabSize, windows, (ids) => windowLogits(dense, ids), (ids) => windowLogits(moe, ids), onProgress);
}

async function compareLogits(
  V: number,
  windows: readonly number[][],
  denseLogits: (ids: readonly number[]) => Promise<Float32Array>,
  moeLogits: (ids: readonly number[]) => Promise<Float32Array>,
  onProgress?: (done: number, total: number) => void,
): Promise<Comparison> {
  let nllDense = 0, nllMoe = 0, agree = 0, kl = 0, n = 0;
  for (const [w, ids] of windows.entries()) {
    const dense = await denseLogits(ids);
    const moe = await moeLogits(ids);
    for (let t = 0; t + 1 < ids.length; t++) {
      const ld = logSoftmax(dense.subarray(t * V, (t + 1) * V));
      const lm = logSoftmax(moe.subarray(t * V, (t + 1) * V));
      const next = ids[t + 1];
      nllDense -= ld[next];
      nllMoe -= lm[next];
      if (argmax(ld) === argmax(lm)) agree++;
      for (let v = 0; v < V; v++) kl += Math.exp(ld[v]) * (ld[v] - lm[v]);
      n++;
    }
    onProgress?.(w + 1, windows.length);
  }
  return { pplDense: Math.exp(nllDense / n), pplMoe: Math.exp(nllMoe / n), agreement: agree / n, kl: kl / n, tokens: n };
}

/**
 * Prefill and decode speed of the model as it stands: tokens/s over all of `ids`, prefilled as consecutive
 * sequences of at most seqLen − decode tokens (so a model with a 1024-token context is still measured over
 * 2048 tokens), then `decode` steps continuing the last sequence.
 */
export async function throughput(model: LlamaModel, ids: readonly number[], decode: number): Promise<{ prefillTokensPerS: number; decodeTokensPerS: number }> {
  const span = model.seqLen - decode;
  if (span < 1) throw new Error(`throughput: ${decode} decode steps leave no room in the ${model.seqLen}-token context`);
  if (!ids.length) throw new Error('throughput: no tokens to prefill');
  model.reset();
  model.forward(ids.slice(0, 1)); // warm-up: pipelines compiled, buffers touched
  await model.gpu.sync();
  let t0 = performance.now();
  for (let s = 0; s < ids.length; s += span) {
    model.reset();
    const end = Math.min(s + span, ids.length);
    for (let i = s; i < end; i += model.chunk) model.forward(ids.slice(i, Math.min(i + model.chunk, end)));
  }
  await model.gpu.sync();
  const prefill = (ids.length / (performance.now() - t0)) * 1000;
  // Each decode step reads its logits back, as generation must to pick the next token.
  t0 = performance.now();
  for (let i = 0; i < decode; i++) await model.forward([ids[i % ids.length]]).read();
  return { prefillTokensPerS: prefill, decodeTokensPerS: (decode / (performance.now() - t0)) * 1000 };
}
