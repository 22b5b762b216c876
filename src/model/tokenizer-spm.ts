// SentencePiece-style BPE tokenizer as karpathy/llama2.c run.c implements it (encode/decode): dummy
// prefix ' ', one token per UTF-8 character with <0xXX> byte fallback, then repeatedly merge the
// adjacent pair whose concatenation is the highest-scoring vocabulary piece (leftmost on ties).
// Used for llama2.c tokenizer.bin (run.c build_tokenizer) and GGUF tokenizer.ggml.* (model "llama").
import { CheckpointError, type ByteSource } from './source.ts';
import type { Tokenizer } from './tokenizer.ts';

/** GGUF tokenizer.ggml.token_type values (llama.cpp llama_token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface SpmVocab {
  pieces: string[];
  scores: ArrayLike<number>;
  /** Per token, TOKEN_TYPE; when absent: '<0xXX>' pieces are bytes, bosId/eosId control, unkId unknown. */
  types?: ArrayLike<number>;
  bosId: number;
  eosId: number;
  unkId: number;
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

export function spmTokenizer(name: string, v: SpmVocab): Tokenizer {
  // GGUF / SentencePiece write spaces as '▁'; llama2.c's export already replaced them with ' '.
  const pieces = v.pieces.map((p) => p.replaceAll('\u2581', ' '));
  const typeOf = (id: number): number =>
    v.types ? v.types[id]
    : BYTE_PIECE.test(pieces[id]) ? TOKEN_TYPE.byte
    : id === v.bosId || id === v.eosId ? TOKEN_TYPE.control
    : id === v.unkId ? TOKEN_TYPE.unknown
    : TOKEN_TYPE.normal;
  const mergeable = new Map<string, number>(); // piece → id, pieces that text can be built from
  const byteId = new Array<number>(256).fill(v.unkId);
  const byteOf = new Map<number, number>(); // id → byte value
  for (let id = pieces.length - 1; id >= 0; id--) {
    const t = typeOf(id);
    const m = BYTE_PIECE.exec(pieces[id]);
    if (t === TOKEN_TYPE.byte && m) {
      byteId[parseInt(m[1], 16)] = id;
      byteOf.set(id, parseInt(m[1], 16));
    } else if (t === TOKEN_TYPE.normal || t === TOKEN_TYPE.userDefined) {
      mergeable.set(pieces[id], id); // iterating down, so the lowest id wins on duplicates
    }
  }
  const utf8 = new TextEncoder();

  function encode(text: string, opts: { bos?: boolean } = {}): number[] {
    const ids = opts.bos === false ? [] : [v.bosId];
    if (text === '') return ids;
    // ---- one symbol per character (or per byte when the character is not a piece); text null = a byte
    const sym: { id: number; text: string | null }[] = [];
    for (const ch of ' ' + text) {
      const id = mergeable.get(ch);
      if (id !== undefined) sym.push({ id, text: ch });
      else for (const b of utf8.encode(ch)) sym.push({ id: byteId[b], text: null });
    }
    // ---- merges: best (score, then leftmost) pair first, via a heap with stale entries skipped
    const n = sym.length;
    const next = Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Array.from({ length: n }, (_, i) => i - 1);
    const version = new Array<number>(n).fill(0);
    const heap = new PairHeap();
    const push = (l: number) => {
      const r = next[l];
      if (r < 0 || sym[l].text === null || sym[r].text === null) return;
      const id = mergeable.get(sym[l].text! + sym[r].text!);
      if (id !== undefined) heap.push({ score: v.scores[id], l, r, vl: version[l], vr: version[r], id });
    };
    for (let i = 0; i < n; i++) push(i);
    for (let p = heap.pop(); p; p = heap.pop()) {
      if (next[p.l] !== p.r || version[p.l] !== p.vl || version[p.r] !== p.vr) continue; // stale
      sym[p.l] = { id: p.id, text: sym[p.l].text! + sym[p.r].text! };
      version[p.l]++;
      version[p.r] = -1; // dead
      next[p.l] = next[p.r];
      if (next[p.l] >= 0) prev[next[p.l]] = p.l;
      if (prev[p.l] >= 0) push(prev[p.l]);
      push(p.l);
    }
    for (let i = 0; i >= 0; i = next[i]) ids.push(sym[i].id);
    return ids;
  }

  function decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    let first = true; // the first piece's leading space is the dummy prefix
    for (const id of ids) {
      if (typeOf(id) === TOKEN_TYPE.control) continue;
      const b = byteOf.get(id);
      if (b !== undefined) bytes.push(b);
      else bytes.push(...utf8.encode(first ? pieces[id].replace(/^ /, '') : pieces[id]));
      first = false;
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }

  function decodeToken(id: number, prevId?: number): string {
    const b = byteOf.get(id);
    if (b !== undefined) return b < 0x80 ? String.fromCharCode(b) : pieces[id];
    // run.c: following BOS, SentencePiece drops the piece's leading space
    return prevId === undefined || prevId === v.bosId ? pieces[id].replace(/^ /, '') : pieces[id];
  }

  return { name, encode, decode, decodeToken, bosId: v.bosId, eosId: v.eosId, vocabSize: pieces.length };
}

interface Pair {
  score: number;
  l: number;
  r: number;
  vl: number;
  vr: number;
  id: number;
}

/** Max-heap on score, then smallest left position (run.c scans left to right, keeps the first best). */
class PairHeap {
  private a: Pair[] = [];
  private above = (x: Pair, y: Pair) => x.score > y.score || (x.score === y.score && x.l < y.l);
  push(p: Pair): void {
    const a = this.a;
    a.push(p);
    for (let i = a.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (!this.above(a[i], a[up])) break;
      [a[i], a[up]] = [a[up], a[i]];
      i = up;
    }
  }
  pop(): Pair | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.above(a[l], a[m])) m = l;
        if (r < a.length && this.above(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * llama2.c tokenizer.bin (run.c build_tokenizer): int32 max_token_length, then per token f32 score,
 * int32 byte length, UTF-8 bytes. The file does not store the count: every entry up to the end is read.
 * Ids follow run.c: 0 <unk>, 1 BOS, 2 EOS.
 */
export async function readLlama2cTokenizer(src: ByteSource): Promise<Tokenizer> {
  const bytes = await src.read(0, src.size);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new CheckpointError(src.name, `truncated: ${bytes.length} bytes, no max_token_length`);
  const maxLen = dv.getInt32(0, true);
  const pieces: string[] = [];
  const scores: number[] = [];
  const dec = new TextDecoder();
  for (let p = 4; p < bytes.length; ) {
    const id = pieces.length;
    if (p + 8 > bytes.length) throw new CheckpointError(src.name, `truncated inside token ${id}'s score/length at byte ${p}`);
    const len = dv.getInt32(p + 4, true);
    if (len < 0 || len > maxLen || p + 8 + len > bytes.length) {
      throw new CheckpointError(src.name, `token ${id}: length ${len} at byte ${p + 4} is invalid (max_token_length ${maxLen}, ${bytes.length - p - 8} bytes left)`);
    }
    scores.push(dv.getFloat32(p, true));
    pieces.push(dec.decode(bytes.subarray(p + 8, p + 8 + len)));
    p += 8 + len;
  }
  return spmTokenizer(src.name, { pieces, scores, bosId: 1, eosId: 2, unkId: 0 });
}
