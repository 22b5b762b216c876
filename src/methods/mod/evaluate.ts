// Scoring a tuned model with its Mixture-of-Depths head (a head of k = 0 is the plain model): exact-match
// accuracy of the greedy answer after each '=' (arXiv:2410.13077 §3 scores arithmetic by the answer),
// perplexity on prose to show what tuning costs elsewhere, tokens/s of the forward with the head, and the
// routing analysis of §4.1: the router's weight on each member per token, averaged per token type.
import type { Tokenizer } from '../../model/tokenizer.ts';
import type { TrainModel } from '../../train/llama-train.ts';
import { windowsPerplexity, type WindowsScore } from '../../train/perplexity.ts';
import { members, modSequenceLoss, type ModHead } from './ensemble.ts';
import type { Problem } from './task-data.ts';

/** The ensemble's log-probabilities [T, vocab] and router weights [T, K] for a sequence of ids. */
export interface Scored {
  logProbs: Float32Array;
  gates: Float32Array;
}

/** One forward of the model and its head, nothing recorded; ids with BOS first. */
export async function score(m: TrainModel, head: ModHead, ids: readonly number[]): Promise<Scored> {
  const gpu = m.params.get('model.embed_tokens.weight').value.gpu;
  const T = ids.length, V = m.config.vocabSize, K = members(head);
  const idsT = gpu.upload(Uint32Array.from(ids), [T], 'mod.ids');
  // the targets only feed the loss, which scoring ignores: the next ids, and 0 past the end
  const targets = gpu.upload(Uint32Array.from(ids, (_, i) => ids[i + 1] ?? 0), [T], 'mod.targets');
  const ce = gpu.tensor([T], 'f32', 'mod.ce'), logProbs = gpu.tensor([T, V], 'f32', 'mod.logProbs'), gates = gpu.tensor([T, K], 'f32', 'mod.gates');
  try {
    modSequenceLoss(m, head, { ids: idsT, targets }, { train: false, ceScale: 0, klScale: 0, out: { ce, offset: 0 }, logProbs, gates });
    return { logProbs: (await logProbs.read()) as Float32Array, gates: (await gates.read()) as Float32Array };
  } finally {
    for (const t of [idsT, targets, ce, logProbs, gates]) t.release();
  }
}

function argmax(a: Float32Array, row: number, V: number): number {
  let best = 0;
  for (let j = 1; j < V; j++) if (a[row * V + j] > a[row * V + best]) best = j;
  return best;
}

/** The number a greedy continuation starts with, once a character after its digits ends it; else null. */
function finishedNumber(text: string): number | null {
  const m = /^\s*(-?\d+)(\D)/.exec(text);
  return m ? Number(m[1]) : null;
}

export type TokenType = 'digits' | 'operators' | 'words' | 'other';

/** A token's type by its text: all digits, an arithmetic operator or '=', letters, anything else. */
export function tokenType(text: string): TokenType {
  const s = text.trim();
  if (/^\d+$/.test(s)) return 'digits';
  if (/^[-+*/=×÷]+$/.test(s)) return 'operators';
  if (/^[A-Za-z]+$/.test(s)) return 'words';
  return 'other';
}

export interface RoutingAnalysis {
  /** the members' names: 'final', then 'layer <l>' for each late layer */
  members: string[];
  /** mean router weight per member over the tokens of each type (the token whose state the router reads) */
  byType: Record<TokenType, { tokens: number; mean: number[] }>;
  /** the first scored problem token by token: its text and the router's weights */
  example: { token: string; type: TokenType; gates: number[] }[];
}

export interface ExactMatch {
  scored: number;
  correct: number;
  accuracy: number;
  /** the first problems: prompt, true answer, the greedy answer (null: no number within 8 tokens) */
  samples: { prompt: string; answer: number; greedy: number | null }[];
  routing: RoutingAnalysis | null;
  seconds: number;
}

/** Problems whose greedy answer the report shows. */
const SAMPLES = 8;

/**
 * Whether an unfinished greedy continuation can still turn into `answer`: so far only blanks and digits
 * that begin it. Anything else decides it wrong, since more tokens only add characters.
 */
function stillOpen(text: string, answer: number): boolean {
  return /^\s*-?\d*$/.test(text) && String(answer).startsWith(text.trim());
}

/** Most tokens a greedy answer may take before it counts as no number. */
const MAX_ANSWER_TOKENS = 8;

/**
 * Exact match of the greedy answer: [BOS] prompt through '=', greedy continuation, the number it starts
 * with compared with the truth. One teacher-forced forward over "prompt answer." gives the greedy tokens
 * for as long as they agree with the true ones (greedy decoding is then exactly that path); only a
 * problem whose greedy path leaves the truth is decoded further, token by token.
 */
export async function exactMatch(m: TrainModel, head: ModHead, tok: Tokenizer, problems: readonly Problem[], progress: (p: number) => void): Promise<ExactMatch> {
  const t0 = performance.now();
  const V = m.config.vocabSize, K = members(head);
  const names = ['final', ...head.layers.map((l) => `layer ${l}`)];
  const byType: RoutingAnalysis['byType'] = Object.fromEntries((['digits', 'operators', 'words', 'other'] as const).map((k) => [k, { tokens: 0, mean: new Array(K).fill(0) }])) as RoutingAnalysis['byType'];
  let example: RoutingAnalysis['example'] = [];
  let correct = 0;
  const samples: ExactMatch['samples'] = [];
  for (const [n, p] of problems.entries()) {
    const prompt = tok.encode(p.prompt, { bos: true });
    const full = tok.encode(`${p.prompt} ${p.answer}.`, { bos: true });
    const aligned = prompt.every((id, i) => full[i] === id);
    const ids = aligned ? full : prompt;
    const s = await score(m, head, ids);
    // routing: the router reads the state at each position; types by that position's token
    for (let i = 0; i < ids.length; i++) {
      const type = tokenType(tok.decodeToken(ids[i], ids[i - 1]));
      byType[type].tokens++;
      for (let j = 0; j < K; j++) byType[type].mean[j] += s.gates[i * K + j];
    }
    if (n === 0) example = ids.map((id, i) => ({ token: tok.decodeToken(id, ids[i - 1]), type: tokenType(tok.decodeToken(id, ids[i - 1])), gates: Array.from(s.gates.subarray(i * K, (i + 1) * K)) }));
    // follow the teacher-forced rows while greedy agrees with the truth
    const out: number[] = [];
    let row = prompt.length - 1;
    while (row < ids.length) {
      const g = argmax(s.logProbs, row, V);
      out.push(g);
      if (row + 1 >= ids.length || g !== ids[row + 1] || finishedNumber(tok.decode(out)) !== null) break;
      row++;
    }
    let greedy = finishedNumber(tok.decode(out));
    // the greedy path left the true text: decode on from the prompt and what greedy produced so far, while
    // the answer may still come out right (other tokens for the same digits); the first problems, which
    // the report shows, to the end
    const decodeAll = samples.length < SAMPLES;
    while (greedy === null && out.length < MAX_ANSWER_TOKENS && (decodeAll || stillOpen(tok.decode(out), p.answer))) {
      const seq = [...prompt, ...out];
      const r = await score(m, head, seq);
      out.push(argmax(r.logProbs, seq.length - 1, V));
      greedy = finishedNumber(tok.decode(out));
    }
    if (greedy === p.answer) correct++;
    if (decodeAll) samples.push({ prompt: p.prompt, answer: p.answer, greedy });
    progress(n + 1);
  }
  for (const v of Object.values(byType)) v.mean = v.mean.map((x) => (v.tokens ? x / v.tokens : 0));
  return {
    scored: problems.length, correct, accuracy: problems.length ? correct / problems.length : 0, samples,
    routing: K > 1 ? { members: names, byType, example } : null,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Perplexity of the ensemble's prediction over windows of prose (each predicts size − 1 tokens). */
export function prosePerplexity(m: TrainModel, head: ModHead, windows: readonly number[][]): Promise<WindowsScore> {
  return windowsPerplexity(m, windows, (mm, s, o) => modSequenceLoss(mm, head, s, o));
}
