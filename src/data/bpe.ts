// Byte-level BPE (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword Units",
// arXiv:1508.07909; byte-level as in GPT-2, Radford et al. 2019) trained from plain text and written as a
// Hugging Face tokenizer.json that @huggingface/tokenizers (tokenizer-hf.ts) and transformers load.
//
// Pipeline, as the HF `tokenizers` library runs it:
//   special tokens split out → ByteLevel pre-tokenizer (GPT-2 regex, then UTF-8 bytes as printable
//   characters) → BPE merges by rank → TemplateProcessing "<bos> $A" → ids.
// add_prefix_space is false (GPT-2's choice, and corpus-llama-7m's): a text's first word is encoded
// without the leading space mark 'Ġ', so "The" opening a document and " The" inside it are different
// tokens, and decode(encode(x)) == x holds with no space to strip.
//
// Training is the standard fast BPE: a table of pre-token frequencies, pair counts over it, an index from
// each pair to the words that hold it, and a max-heap of pairs with lazy updates, so a merge touches
// only the words that contain the pair. Merges and their tie-breaking are those of HF's BpeTrainer
// (checked once against tokenizers 0.23.2 on the Brown train split: the same first 29744 merges).

/** Names and ids 0, 1, 2 of the special tokens; `bos` is what the post-processor puts first. */
export interface SpecialTokens {
  bos: string;
  eos: string;
  unk: string;
}

/** LLaMA's names, which tokenizer-hf.ts finds through tokenizer_config.json's bos_token / eos_token. */
export const LLAMA_SPECIAL_TOKENS: SpecialTokens = { bos: '<s>', eos: '</s>', unk: '<unk>' };

export interface BpeOptions {
  /** Special tokens + 256 bytes + merged tokens. Training stops earlier when no pair is frequent enough. */
  vocabSize: number;
  /** A pair seen fewer times than this in the corpus is never merged (default 2: once teaches nothing). */
  minFrequency?: number;
  /** Default LLAMA_SPECIAL_TOKENS. */
  specialTokens?: SpecialTokens;
}

interface ByteLevelConfig {
  type: 'ByteLevel';
  add_prefix_space: false;
  trim_offsets: true;
  use_regex: true;
}

interface AddedToken {
  id: number;
  content: string;
  single_word: false;
  lstrip: false;
  rstrip: false;
  normalized: false;
  special: true;
}

type TemplatePiece = { SpecialToken: { id: string; type_id: 0 } } | { Sequence: { id: 'A' | 'B'; type_id: 0 } };

/** The subset of the tokenizer.json schema this trainer writes. */
export interface TokenizerJson {
  version: '1.0';
  truncation: null;
  padding: null;
  added_tokens: AddedToken[];
  normalizer: null;
  pre_tokenizer: ByteLevelConfig;
  post_processor: {
    type: 'TemplateProcessing';
    single: TemplatePiece[];
    pair: TemplatePiece[];
    special_tokens: Record<string, { id: string; ids: number[]; tokens: string[] }>;
  };
  decoder: ByteLevelConfig;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: false;
    /** token → id; every id below the vocabulary size appears once. */
    vocab: Record<string, number>;
    /** In the order learned: rank 0 is applied first. */
    merges: [string, string][];
  };
}

export class BpeError extends Error {
  constructor(detail: string) {
    super(`byte-level BPE: ${detail}`);
    this.name = 'BpeError';
  }
}

// ----------------------------------------------------------------------------- byte-level alphabet

/**
 * GPT-2's bytes_to_unicode: each byte as one printable character, so a token is a plain string. Printable
 * Latin-1 bytes stand for themselves; the other 68 (controls, space, NBSP, soft hyphen) take 256, 257, …
 * in byte order (space → 'Ġ', '\n' → 'Ċ').
 */
const BYTE_CHAR: string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : next++));
})();

/** GPT-2's pre-tokenizer regex, as the HF ByteLevel pre-tokenizer (use_regex: true) applies it. */
const PRE_TOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const utf8 = new TextEncoder();

/**
 * `text.split` by this cuts the text at special tokens: [text, special, text, …, text], ordinary text at
 * even indices. Like the HF added-vocabulary splitter: leftmost match first, the longest at that position.
 */
function specialPattern(contents: readonly string[]): RegExp {
  const escaped = [...contents].sort((a, b) => b.length - a.length).map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`(${escaped.join('|')})`, 'u');
}

/** A pre-token as the byte-level characters its UTF-8 bytes map to. */
function byteLevel(preToken: string): string[] {
  return Array.from(utf8.encode(preToken), (b) => BYTE_CHAR[b]);
}

// ----------------------------------------------------------------------------- training

/** A pair's entry in the heap; `count` may be stale (higher than now), and is checked when popped. */
interface HeapEntry {
  count: number;
  a: number;
  b: number;
}

/**
 * The next merge: the most frequent pair; ties go to the smallest (left id, right id), ids being vocabulary
 * order (special tokens, the 256 byte characters by code point, then merged tokens in order of creation),
 * the rule of HF's BpeTrainer.
 */
function before(x: HeapEntry, y: HeapEntry): boolean {
  return x.count !== y.count ? x.count > y.count : x.a !== y.a ? x.a < y.a : x.b < y.b;
}

class MaxHeap {
  private items: HeapEntry[] = [];

  push(e: HeapEntry): void {
    const h = this.items;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  pop(): HeapEntry | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length === 0 || last === undefined) return top;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < h.length && before(h[l], h[best])) best = l;
      if (r < h.length && before(h[r], h[best])) best = r;
      if (best === i) return top;
      [h[i], h[best]] = [h[best], h[i]];
      i = best;
    }
  }
}

/** Whether `a` is directly followed by `b` somewhere in the word. */
function hasPair(word: readonly number[], a: number, b: number): boolean {
  for (let i = 0; i + 1 < word.length; i++) if (word[i] === a && word[i + 1] === b) return true;
  return false;
}

/** Every non-overlapping (a, b) replaced by `merged`, left to right, as BPE encoding applies a merge. */
function mergeWord(word: readonly number[], a: number, b: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) {
    if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
      out.push(merged);
      i++;
    } else {
      out.push(word[i]);
    }
  }
  return out;
}

/**
 * Learns byte-level BPE merges from `texts` (each pre-tokenized on its own, so no pre-token spans two
 * texts) and returns the tokenizer.json. Deterministic: the same texts and options give the same JSON.
 */
export function trainByteLevelBpe(texts: Iterable<string>, opts: BpeOptions): TokenizerJson {
  const special = opts.specialTokens ?? LLAMA_SPECIAL_TOKENS;
  const specialList = [special.bos, special.eos, special.unk];
  const minFrequency = opts.minFrequency ?? 2;
  if (specialList.some((s) => typeof s !== 'string' || s.length === 0) || new Set(specialList).size !== 3) {
    throw new BpeError(`special tokens must be three different non-empty strings, got ${JSON.stringify(special)}`);
  }
  const base = specialList.length + 256;
  if (!Number.isSafeInteger(opts.vocabSize) || opts.vocabSize < base) {
    throw new BpeError(`vocabSize must be an integer of at least ${base} (3 special tokens + 256 bytes), got ${opts.vocabSize}`);
  }
  if (!Number.isSafeInteger(minFrequency) || minFrequency < 1) {
    throw new BpeError(`minFrequency must be a positive integer, got ${minFrequency}`);
  }
  const V = opts.vocabSize; // every id is below V, so a * V + b is a unique key for the pair (a, b)

  // The vocabulary: specials, then the byte characters by code point (the order HF's trainer gives them).
  const vocab: string[] = [...specialList, ...[...BYTE_CHAR].sort()];
  const idOf = new Map(vocab.map((t, i) => [t, i]));

  // 1. Pre-token frequencies. Special tokens in the text are cut out, as encoding does, and not learned from.
  const specialRe = specialPattern(specialList);
  const freqOf = new Map<string, number>();
  for (const text of texts) {
    text.split(specialRe).forEach((part, i) => {
      if (i % 2 === 1) return;
      for (const m of part.matchAll(PRE_TOKENIZE)) freqOf.set(m[0], (freqOf.get(m[0]) ?? 0) + 1);
    });
  }
  const words: number[][] = []; // each distinct pre-token as its current symbols
  const freq: number[] = []; // (word) how often the pre-token occurs
  for (const [w, f] of freqOf) {
    words.push(byteLevel(w).map((c) => idOf.get(c)!));
    freq.push(f);
  }

  // 2. Pair counts and the pair → words index. The index may list words that have since lost the pair
  //    (a merge checks); it never misses one that has it.
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  /** Adds (sign +1) or removes (-1) word wi's pairs; new pairs that contain `watch` go into `touched`. */
  const countPairs = (wi: number, sign: 1 | -1, watch = -1, touched?: Set<number>) => {
    const w = words[wi];
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i] * V + w[i + 1];
      const n = (pairCount.get(key) ?? 0) + sign * freq[wi];
      if (n === 0) pairCount.delete(key);
      else pairCount.set(key, n);
      if (sign === 1) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(wi);
        if (w[i] === watch || w[i + 1] === watch) touched?.add(key);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) countPairs(wi, 1);
  const heap = new MaxHeap();
  for (const [key, count] of pairCount) heap.push({ count, a: Math.floor(key / V), b: key % V });

  // 3. Merge the best pair until the vocabulary is full. Counts of pairs without the new token only fall,
  //    so a popped entry whose count is stale is pushed back with the true count. Pairs with the merged
  //    token (new, or grown when the token already existed) are pushed after each merge.
  const merges: [string, string][] = [];
  while (vocab.length < V) {
    const top = heap.pop();
    if (top === undefined) break;
    const key = top.a * V + top.b;
    const count = pairCount.get(key) ?? 0;
    if (count !== top.count) {
      if (count > 0) heap.push({ count, a: top.a, b: top.b });
      continue;
    }
    if (count < minFrequency) break;

    const left = vocab[top.a];
    const right = vocab[top.b];
    // Two merges can spell the same token ('ab'+'c', 'a'+'bc'): it keeps its first id, as in HF's trainer.
    let merged = idOf.get(left + right);
    if (merged === undefined) {
      merged = vocab.length;
      vocab.push(left + right);
      idOf.set(left + right, merged);
    }
    merges.push([left, right]);

    const touched = new Set<number>();
    for (const wi of pairWords.get(key)!) {
      if (!hasPair(words[wi], top.a, top.b)) continue;
      countPairs(wi, -1);
      words[wi] = mergeWord(words[wi], top.a, top.b, merged);
      countPairs(wi, 1, merged, touched);
    }
    pairWords.delete(key);
    for (const k of touched) {
      const n = pairCount.get(k);
      if (n !== undefined) heap.push({ count: n, a: Math.floor(k / V), b: k % V });
    }
  }

  return tokenizerJson(vocab, merges, special);
}

function tokenizerJson(vocab: readonly string[], merges: [string, string][], special: SpecialTokens): TokenizerJson {
  const byteLevelConfig: ByteLevelConfig = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const bos = { SpecialToken: { id: special.bos, type_id: 0 as const } };
  const seq = (id: 'A' | 'B') => ({ Sequence: { id, type_id: 0 as const } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special.bos, special.eos, special.unk].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevelConfig,
    // BOS first, as LLaMA was trained and as corpus-llama-7m's tokenizer.json does it.
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, seq('A')],
      pair: [bos, seq('A'), bos, seq('B')],
      special_tokens: { [special.bos]: { id: special.bos, ids: [0], tokens: [special.bos] } },
    },
    decoder: byteLevelConfig,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null, // every byte is in the vocabulary, so nothing is ever unknown
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      // fromEntries defines each key as data, so a token spelled '__proto__' is an ordinary entry.
      vocab: Object.fromEntries(vocab.map((t, i) => [t, i])),
      merges,
    },
  };
}

/**
 * tokenizer_config.json for the same tokenizer: the special tokens by name (tokenizer-hf.ts and
 * transformers read them here), and clean-up off so that decode(encode(x)) == x in transformers too.
 */
export function tokenizerConfigJson(special: SpecialTokens = LLAMA_SPECIAL_TOKENS) {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: special.bos,
    eos_token: special.eos,
    unk_token: special.unk,
    add_bos_token: true,
    clean_up_tokenization_spaces: false,
  };
}

// ----------------------------------------------------------------------------- encoding (the reference)

/**
 * Encodes as the HF pipeline does with this tokenizer.json, without the post-processor (no BOS): the
 * reference that @huggingface/tokenizers is checked against. In each pre-token the lowest-ranked merge
 * present is applied, leftmost first, until none is.
 */
export function byteLevelBpeEncoder(tok: TokenizerJson): (text: string) => number[] {
  const rank = new Map(tok.model.merges.map(([a, b], i) => [`${a} ${b}`, i])); // byte-level tokens hold no space
  const vocab = new Map(Object.entries(tok.model.vocab));
  const specialId = new Map(tok.added_tokens.map((t) => [t.content, t.id]));
  const specialRe = specialPattern([...specialId.keys()]);
  const cache = new Map<string, number[]>();

  const bpe = (preToken: string): number[] => {
    const cached = cache.get(preToken);
    if (cached) return cached;
    const sym = byteLevel(preToken);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = rank.get(`${sym[i]} ${sym[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      sym.splice(best, 2, sym[best] + sym[best + 1]);
    }
    const ids = sym.map((s) => {
      const id = vocab.get(s);
      if (id === undefined) throw new BpeError(`token ${JSON.stringify(s)} is made by a merge but missing from the vocabulary`);
      return id;
    });
    cache.set(preToken, ids);
    return ids;
  };

  return (text) =>
    text.split(specialRe).flatMap((part, i) =>
      i % 2 === 1 ? [specialId.get(part)!] : [...part.matchAll(PRE_TOKENIZE)].flatMap((m) => bpe(m[0])),
    );
}
