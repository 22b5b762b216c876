// Picking the next token from a row of logits: greedy, or temperature + nucleus (top-p) sampling drawn
// from a seeded Rng, so a seed reproduces a generation exactly.
import type { Rng } from '../data/rng.ts';

export type Sampler = { kind: 'greedy' } | { kind: 'sample'; temperature: number; topP: number; rng: Rng };

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export function sample(logits: ArrayLike<number>, s: Sampler): number {
  if (s.kind === 'greedy' || s.temperature === 0) return argmax(logits);
  // softmax(logits / T) in float64
  const max = logits[argmax(logits)];
  const p = Float64Array.from(logits, (l) => Math.exp((l - max) / s.temperature));
  const sum = p.reduce((a, b) => a + b, 0);
  // nucleus: the smallest set of most likely tokens whose mass reaches topP
  const order = [...p.keys()].sort((a, b) => p[b] - p[a] || a - b);
  let mass = 0;
  let keep = 0;
  while (keep < order.length && mass < s.topP * sum) mass += p[order[keep++]];
  let u = s.rng.uniform() * mass;
  for (let i = 0; i < keep; i++) {
    u -= p[order[i]];
    if (u <= 0) return order[i];
  }
  return order[keep - 1];
}
