// The byte-level BPE trainer: merges on a corpus small enough to count by hand, determinism, options
// checked, and a 4096-token tokenizer trained on the Brown Corpus that @huggingface/tokenizers loads
// (through tokenizer-hf.ts) and that encodes as our reference encoder does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteLevelPreTokenizer } from '@huggingface/tokenizers';
import { BpeError, byteLevelBpeEncoder, tokenizerConfigJson, trainByteLevelBpe, type TokenizerJson } from '../src/data/bpe.ts';
import { loadBrown } from '../src/data/brown-node.ts';
import { readHfTokenizer } from '../src/model/tokenizer-hf.ts';
import { bytesSource } from '../src/model/source.ts';
import type { Tokenizer } from '../src/model/tokenizer.ts';

/** The tokenizer as the project loads it: tokenizer.json + tokenizer_config.json through tokenizer-hf.ts. */
async function load(tok: TokenizerJson): Promise<Tokenizer> {
  const file = (name: string, json: unknown) => bytesSource(name, new TextEncoder().encode(JSON.stringify(json)));
  return readHfTokenizer(file('tokenizer.json', tok), file('tokenizer_config.json', tokenizerConfigJson()), { bosId: -1, eosId: -1 });
}

/** The HF course's example (words hug×10, pug×5, pun×12, bun×4, hugs×5), one word a text: no 'Ġ'. */
const HUGS = [...Array(10).fill('hug'), ...Array(5).fill('pug'), ...Array(12).fill('pun'), ...Array(4).fill('bun'), ...Array(5).fill('hugs')];

test('tiny corpus: merges counted by hand, ties to the smaller ids, stops when no pair is left', () => {
  const tok = trainByteLevelBpe(HUGS, { vocabSize: 1000, minFrequency: 1 });
  // Pair counts: u g 20 → ug; u n 16 → un; h ug 15 → hug; p un 12 → pun; then p ug 5 and hug s 5 tie:
  // 'p' (a byte, id 82) comes before 'hug' (id 261); b un 4 last. Every word is then one token.
  assert.deepEqual(tok.model.merges, [['u', 'g'], ['u', 'n'], ['h', 'ug'], ['p', 'un'], ['p', 'ug'], ['hug', 's'], ['b', 'un']]);
  const v = tok.model.vocab;
  assert.deepEqual([v['<s>'], v['</s>'], v['<unk>'], v['!'], v['p'], v['Ġ']], [0, 1, 2, 3, 82, 223]);
  assert.deepEqual(['ug', 'un', 'hug', 'pun', 'pug', 'hugs', 'bun'].map((t) => v[t]), [259, 260, 261, 262, 263, 264, 265]);
  assert.equal(Object.keys(v).length, 266);
  assert.deepEqual(new Set(Object.values(v)), new Set(Array.from({ length: 266 }, (_, i) => i)));

  // minFrequency 5 stops before b un (4); vocabSize 262 stops after hug.
  assert.equal(trainByteLevelBpe(HUGS, { vocabSize: 1000, minFrequency: 5 }).model.merges.length, 6);
  assert.deepEqual(trainByteLevelBpe(HUGS, { vocabSize: 262, minFrequency: 1 }).model.merges, [['u', 'g'], ['u', 'n'], ['h', 'ug']]);
});

test('pre-tokenization: GPT-2 regex, a space kept with the word after it, no prefix space', () => {
  // Pre-tokens: hug, Ġhug, Ġhug | hug, 's. h u and u g tie at 4 ('h' < 'u'); Ġ hug is seen 2 times;
  // ' s once, below the default minFrequency 2.
  const tok = trainByteLevelBpe(['hug hug hug', "hug's"], { vocabSize: 1000 });
  assert.deepEqual(tok.model.merges, [['h', 'u'], ['hu', 'g'], ['Ġ', 'hug']]);
  const encode = byteLevelBpeEncoder(tok);
  const v = tok.model.vocab;
  assert.deepEqual(encode("hug hug's"), [v.hug, v['Ġhug'], v["'"], v.s]);
});

/**
 * The textbook trainer, for comparison: recount every pair of every word before each merge. `words` are
 * pre-tokens as byte-level strings (the vocabulary's keys); returns the merges.
 */
function naiveMerges(words: Map<string, number>, vocab: Record<string, number>, nMerges: number, minFrequency: number): [string, string][] {
  const ids = new Map(Object.entries(vocab));
  let table = [...words].map(([w, f]) => ({ sym: [...w], f }));
  const merges: [string, string][] = [];
  while (merges.length < nMerges) {
    const counts = new Map<string, number>();
    for (const { sym, f } of table) for (let i = 0; i + 1 < sym.length; i++) counts.set(`${sym[i]} ${sym[i + 1]}`, (counts.get(`${sym[i]} ${sym[i + 1]}`) ?? 0) + f);
    const id = (t: string) => ids.get(t)!;
    const best = [...counts].map(([k, n]) => ({ pair: k.split(' ') as [string, string], n })).sort((x, y) => y.n - x.n || id(x.pair[0]) - id(y.pair[0]) || id(x.pair[1]) - id(y.pair[1]))[0];
    if (!best || best.n < minFrequency) break;
    const [a, b] = best.pair;
    merges.push([a, b]);
    if (!ids.has(a + b)) ids.set(a + b, ids.size);
    table = table.map(({ sym, f }) => {
      const out: string[] = [];
      for (let i = 0; i < sym.length; i++) {
        if (sym[i] === a && sym[i + 1] === b) {
          out.push(a + b);
          i++;
        } else {
          out.push(sym[i]);
        }
      }
      return { sym: out, f };
    });
  }
  return merges;
}

test('the incremental trainer learns what recounting every pair before each merge learns (brown-humor, 600 tokens)', async () => {
  const text = (await loadBrown()).find((d) => d.name === 'brown-humor')!.train;
  const tok = trainByteLevelBpe([text], { vocabSize: 600 });
  assert.equal(tok.model.merges.length, 600 - 259);
  // Pre-tokens from the library's ByteLevel pre-tokenizer: independent of bpe.ts's regex and byte table.
  const words = new Map<string, number>();
  for (const w of new ByteLevelPreTokenizer(tok.pre_tokenizer).pre_tokenize_text(text)) words.set(w, (words.get(w) ?? 0) + 1);
  const initial = Object.fromEntries(Object.entries(tok.model.vocab).filter(([, id]) => id < 259));
  assert.deepEqual(naiveMerges(words, initial, 600 - 259, 2), tok.model.merges);
});

test('deterministic: two trainings give identical JSON', async () => {
  const text = (await loadBrown()).find((d) => d.name === 'brown-news')!.train;
  const a = JSON.stringify(trainByteLevelBpe([text], { vocabSize: 1500 }));
  const b = JSON.stringify(trainByteLevelBpe([text], { vocabSize: 1500 }));
  assert.equal(a, b);
});

test('options are checked, naming what is wrong', () => {
  const bad: [Parameters<typeof trainByteLevelBpe>[1], RegExp][] = [
    [{ vocabSize: 258 }, /vocabSize must be an integer of at least 259 .* got 258/],
    [{ vocabSize: 300.5 }, /vocabSize must be an integer/],
    [{ vocabSize: 300, minFrequency: 0 }, /minFrequency must be a positive integer, got 0/],
    [{ vocabSize: 300, specialTokens: { bos: '<s>', eos: '<s>', unk: '<unk>' } }, /special tokens must be three different non-empty strings/],
  ];
  for (const [opts, re] of bad) assert.throws(() => trainByteLevelBpe(['x'], opts), (e: unknown) => e instanceof BpeError && re.test(e.message));
});

test('@huggingface/tokenizers encodes as the reference does, specials and odd text included', async () => {
  const tok = trainByteLevelBpe(HUGS.concat(['the hugs of 1999 pugs, naïve café — 日本語 🤗']), { vocabSize: 400, minFrequency: 1 });
  const hf = await load(tok);
  const encode = byteLevelBpeEncoder(tok);
  const samples = [
    'hug',
    ' hugs  and\tpugs\n\nhug ',
    "They'll say it's HUG'S, don't they?",
    'x<s>y</s><unk> <s>',
    'naïve café — 日本語 🤗 1,999.50$',
    '   ',
  ];
  for (const s of samples) {
    assert.deepEqual(hf.encode(s, { bos: false }), encode(s), JSON.stringify(s));
    assert.deepEqual(hf.encode(s), [0, ...encode(s)], `BOS first: ${JSON.stringify(s)}`);
    if (!s.includes('<')) assert.equal(hf.decode(hf.encode(s)), s);
  }
  assert.deepEqual([hf.bosId, hf.eosId, hf.vocabSize], [0, 1, Object.keys(tok.model.vocab).length]);
});

test('Brown Corpus, 4096 tokens: trains fast, loads, round-trips the valid text, sane tokens per word', async (t) => {
  const domains = await loadBrown();
  const t0 = performance.now();
  const tok = trainByteLevelBpe(
    domains.map((d) => d.train),
    { vocabSize: 4096 },
  );
  const seconds = (performance.now() - t0) / 1000;
  const trainBytes = domains.reduce((n, d) => n + d.train.length, 0);
  t.diagnostic(`trained on ${(trainBytes / 1e6).toFixed(1)} M characters in ${seconds.toFixed(1)} s: ${tok.model.merges.length} merges`);
  assert.ok(seconds < 60, `training took ${seconds.toFixed(1)} s; the incremental trainer needs seconds`);
  assert.equal(Object.keys(tok.model.vocab).length, 4096);

  const hf = await load(tok);
  assert.equal(hf.vocabSize, 4096);
  const encode = byteLevelBpeEncoder(tok);
  let tokens = 0;
  let words = 0;
  for (const d of domains) {
    const ids = hf.encode(d.valid, { bos: false });
    assert.deepEqual(ids, encode(d.valid), `${d.name}.valid: @huggingface/tokenizers and the reference disagree`);
    assert.equal(hf.decode(ids), d.valid, `${d.name}.valid does not round-trip`);
    tokens += ids.length;
    words += d.valid.split(/\s+/).filter(Boolean).length;
  }
  const perWord = tokens / words;
  t.diagnostic(`valid: ${tokens} tokens for ${words} words: ${perWord.toFixed(3)} tokens per word`);
  // Brown's words carry their punctuation ("said," is one word, two tokens); 4096 tokens is a small vocabulary.
  assert.ok(perWord > 1.2 && perWord < 2, `tokens per word ${perWord.toFixed(3)} is outside 1.2–2`);
});
