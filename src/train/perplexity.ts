// Perplexity of a model under training, by the training forward with nothing recorded: what the loss sees,
// adapters, MoE routing and any extra head included (methods/mod, methods/dive evaluate trained models so).
import { sequenceLoss, type Sequence, type SequenceLossOptions, type TrainModel } from './llama-train.ts';

export interface WindowsScore {
  ppl: number;
  /** predicted tokens: Σ (window length − 1) */
  tokens: number;
  /** forward tokens per second (prefill, nothing recorded) */
  tokensPerS: number;
}

/** exp(mean next-token cross-entropy) over `windows` (each predicts its size − 1 tokens), `loss` recording one sequence. */
export async function windowsPerplexity(
  m: TrainModel, windows: readonly number[][],
  loss: (m: TrainModel, s: Sequence, o: SequenceLossOptions) => void = sequenceLoss,
): Promise<WindowsScore> {
  const gpu = m.params.get('model.embed_tokens.weight').value.gpu;
  let nll = 0, tokens = 0, seconds = 0;
  for (const w of windows) {
    const T = w.length - 1;
    const ids = gpu.upload(Uint32Array.from(w.slice(0, T)), [T], 'ppl.ids'), targets = gpu.upload(Uint32Array.from(w.slice(1)), [T], 'ppl.targets');
    const ce = gpu.tensor([T], 'f32', 'ppl.ce');
    try {
      const t0 = performance.now();
      loss(m, { ids, targets }, { train: false, ceScale: 0, klScale: 0, out: { ce, offset: 0 } });
      const rows = (await ce.read()) as Float32Array;
      seconds += (performance.now() - t0) / 1000;
      for (const v of rows) nll += v;
      tokens += T;
    } finally {
      for (const t of [ids, targets, ce]) t.release();
    }
  }
  if (!tokens) throw new Error('perplexity: no window of two or more tokens to score');
  return { ppl: Math.exp(nll / tokens), tokens, tokensPerS: tokens / seconds };
}
