// Training text as tokens: the domains of a data folder (<domain>.train.txt / <domain>.valid.txt, one
// document per line; methods/ladimo/data.ts reads them the same way for every host), each document encoded
// as [BOS] doc [EOS] as evaluation does (src/eval/perplexity.ts), and a seeded sampler of training windows.
import { Rng } from '../data/rng.ts';
import { evalWindows } from '../eval/perplexity.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import type { TextData } from '../methods/ladimo/data.ts';

export interface TrainTokens {
  /** the chosen domains */
  domains: string[];
  /** every training document as [BOS] doc [EOS], the domains one after the other */
  train: Uint32Array;
  /** held-out windows of seqLen + 1 tokens (inputs and next-token targets), round-robin over the domains */
  valid: number[][];
}

/**
 * Tokenizes the training text of `domains` ('all' or names; `field` names the setting in errors) and cuts
 * at most `maxWindows` held-out windows of seqLen + 1 tokens from their valid text.
 */
export async function trainTokens(data: TextData, domains: 'all' | string[], tok: Tokenizer, seqLen: number, maxWindows: number, field: string): Promise<TrainTokens> {
  const names = domains === 'all' ? data.domains.map((d) => d.name) : domains;
  if (!names.length) throw new Error(`${field}: no domain named`);
  const chosen = names.map((n) => {
    const d = data.domains.find((x) => x.name === n);
    if (!d) throw new Error(`${field}: no domain '${n}' in ${data.label} (domains: ${data.domains.map((x) => x.name).join(', ')})`);
    return d;
  });
  const parts: number[][] = [];
  let n = 0;
  for (const d of chosen) {
    for (const line of (await d.text('train')).split('\n')) {
      if (!line.trim()) continue;
      const ids = [...tok.encode(line, { bos: true }), tok.eosId];
      parts.push(ids);
      n += ids.length;
    }
  }
  const train = new Uint32Array(n);
  let at = 0;
  for (const p of parts) {
    train.set(p, at);
    at += p.length;
  }
  if (train.length < seqLen + 1) throw new Error(`${field}: ${train.length} training tokens, fewer than one window of ${seqLen + 1}`);
  const per = Math.ceil(maxWindows / chosen.length);
  const lists = await Promise.all(chosen.map(async (d) => evalWindows(await d.text('valid'), tok, seqLen + 1, per)));
  const valid: number[][] = [];
  for (let i = 0; valid.length < maxWindows && lists.some((l) => i < l.length); i++) {
    for (const l of lists) if (i < l.length && valid.length < maxWindows) valid.push(l[i]);
  }
  if (!valid.length) throw new Error(`${field}: the held-out text of ${names.join(', ')} is shorter than one window of ${seqLen + 1} tokens`);
  return { domains: names, train, valid };
}

/**
 * Training windows of `len` tokens at seeded uniform offsets of the token stream. Its state is the number
 * of windows drawn: a resumed run skips as many to continue the same sequence.
 */
export class WindowSampler {
  drawn = 0;
  private readonly rng: Rng;

  constructor(private readonly stream: Uint32Array, private readonly len: number, seed: number) {
    if (stream.length < len) throw new Error(`WindowSampler: ${stream.length} tokens, fewer than one window of ${len}`);
    this.rng = new Rng(seed);
  }

  next(): Uint32Array {
    this.drawn++;
    const start = this.rng.int(this.stream.length - this.len + 1);
    return this.stream.subarray(start, start + this.len);
  }

  skip(windows: number): void {
    for (let i = 0; i < windows; i++) this.next();
  }
}
