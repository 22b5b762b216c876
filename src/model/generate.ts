// Autoregressive generation: prefill the prompt, then decode one token at a time against the KV cache.
import type { LlamaModel } from './llama.ts';
import { sample, type Sampler } from './sample.ts';

export interface GenerateResult {
  ids: number[];
  prefillTokensPerS: number;
  decodeTokensPerS: number;
}

/** Continues `prompt` (token ids, at least one) by up to maxTokens tokens, stopping early at `stopId`. */
export async function generate(
  model: LlamaModel,
  prompt: readonly number[],
  opts: { maxTokens: number; sampler: Sampler; stopId?: number; onToken?: (id: number) => void },
): Promise<GenerateResult> {
  if (prompt.length === 0) throw new Error('generate: the prompt has no tokens (start from BOS)');
  if (prompt.length + opts.maxTokens > model.seqLen) {
    throw new Error(`generate: ${prompt.length} prompt + ${opts.maxTokens} new tokens exceed the ${model.seqLen}-token context`);
  }
  model.reset();
  const vocab = model.config.vocabSize;
  const t0 = performance.now();
  let logits = model.prefill(prompt);
  let row = (await logits.read()).subarray((logits.shape[0] - 1) * vocab, logits.shape[0] * vocab);
  const t1 = performance.now();
  const ids: number[] = [];
  for (let i = 0; i < opts.maxTokens; i++) {
    const next = sample(row, opts.sampler);
    if (next === opts.stopId) break;
    ids.push(next);
    opts.onToken?.(next);
    if (i + 1 === opts.maxTokens) break;
    logits = model.forward([next]);
    row = await logits.read();
  }
  const t2 = performance.now();
  return { ids, prefillTokensPerS: (prompt.length / (t1 - t0)) * 1000, decodeTokensPerS: (ids.length / Math.max(t2 - t1, 1e-9)) * 1000 };
}
