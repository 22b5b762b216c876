// Perplexity of a text, measured the way ../shared/models/README.md describes reference.json's valid_ppl:
// every document (one per line) encoded with BOS and followed by EOS, the token stream cut into
// non-overlapping windows, each window scored on its own (token i+1 predicted from tokens 0..i).
import type { LlamaModel } from '../model/llama.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { crossEntropyFromTargets } from '../ops/softmax.ts';
import { reduceAll } from '../ops/reduce.ts';

/** [BOS] doc [EOS] for each non-empty line, concatenated, cut into at most maxWindows windows of `size`. */
export function evalWindows(text: string, tok: Tokenizer, size: number, maxWindows = Infinity): number[][] {
  const stream: number[] = [];
  const windows: number[][] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    stream.push(...tok.encode(line, { bos: true }), tok.eosId);
    while (stream.length >= size && windows.length < maxWindows) windows.push(stream.splice(0, size));
    if (windows.length >= maxWindows) break;
  }
  return windows;
}

export interface PerplexityResult {
  ppl: number;
  /** Tokens predicted (each window predicts size − 1). */
  tokens: number;
  windows: number;
  tokensPerS: number;
}

export async function perplexity(model: LlamaModel, windows: readonly number[][], progress?: (done: number, total: number) => void): Promise<PerplexityResult> {
  let nll = 0;
  let count = 0;
  const t0 = performance.now();
  for (const [w, ids] of windows.entries()) {
    model.reset();
    for (let start = 0; start < ids.length - 1; start += model.chunk) {
      const chunk = ids.slice(start, start + model.chunk);
      const logits = model.forward(chunk);
      // positions whose next token lies inside the window
      const n = Math.min(chunk.length, ids.length - 1 - start);
      const { loss, targets } = crossEntropyFromTargets(logits.rows(n), Uint32Array.from(ids.slice(start + 1, start + 1 + n)));
      const sum = reduceAll(loss, 'sum');
      nll += (await sum.read())[0];
      count += n;
      for (const t of [loss, targets, sum]) t.release();
    }
    progress?.(w + 1, windows.length);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { ppl: Math.exp(nll / count), tokens: count, windows: windows.length, tokensPerS: windows.reduce((a, w) => a + w.length, 0) / seconds };
}
