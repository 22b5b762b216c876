// GGUF files, following ggml's docs/gguf.md (v2/v3) and llama.cpp's original gguf.c for v1 (v1 stores
// string lengths, array lengths, counts and tensor dims as u32; v2+ as u64). Layout: magic "GGUF", u32
// version, tensor count, metadata count, metadata key/value pairs, tensor infos (name, n_dims, dims
// innermost-first, ggml type, u64 offset), padding to general.alignment (default 32), tensor data.
//
// RoPE: GGUF "llama" tensors are laid out for ggml's normal rope mode, which rotates adjacent pairs
// (2i, 2i+1). llama.cpp's convert_hf_to_gguf.py permutes HF's q_proj/k_proj rows into that order; its
// llama2c converter writes llama2.c's weights unchanged, since llama2.c (like Meta's original
// checkpoints) already rotates adjacent pairs. Either way the q/k rows are right for ropeStyle
// 'interleaved', so they are read as stored; test/model-loaders.test.ts checks stories260K's GGUF
// against its .bin tensor by tensor.
import type { ModelConfig } from './config.ts';
import { CheckpointError, type ByteSource } from './source.ts';
import { checkTokenizer, type Tokenizer } from './tokenizer.ts';
import { spmTokenizer } from './tokenizer-spm.ts';
import { byteLength, checkTensors, numel, Q8_0_BLOCK, weightIndex, type Checkpoint, type DType, type TensorEntry } from './weights.ts';

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** as stored: innermost (contiguous) dimension first */
  dims: number[];
  type: number;
  /** absolute byte offset in the file */
  offset: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  dataStart: number;
}

/** ggml_type ids (ggml.h) → names, for messages; the ones we decode map to a DType. */
const GGML_TYPES = [
  'F32', 'F16', 'Q4_0', 'Q4_1', 'Q4_2', 'Q4_3', 'Q5_0', 'Q5_1', 'Q8_0', 'Q8_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K',
  'Q6_K', 'Q8_K', 'IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ4_NL', 'IQ3_S', 'IQ2_S', 'IQ4_XS', 'I8', 'I16',
  'I32', 'I64', 'F64', 'IQ1_M', 'BF16',
];
const DTYPE_OF: Record<string, DType> = { F32: 'F32', F16: 'F16', BF16: 'BF16', Q8_0: 'Q8_0' };
const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32

// ---- header parsing: synchronous over a prefix of the file, retried with a longer prefix when short

class NeedMore extends Error {}

class Reader {
  pos = 0;
  private dv: DataView;
  private text = new TextDecoder();
  constructor(private bytes: Uint8Array, private wide: boolean) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private take(n: number): number {
    if (this.pos + n > this.bytes.length) throw new NeedMore();
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u32 = () => this.dv.getUint32(this.take(4), true);
  u64 = () => Number(this.dv.getBigUint64(this.take(8), true));
  /** a count or length: u32 in v1, u64 from v2 */
  len = () => (this.wide ? this.u64() : this.u32());
  str = () => {
    const n = this.len();
    return this.text.decode(this.bytes.subarray(this.take(n), this.pos));
  };
  value(type: number): GgufValue {
    const dv = this.dv;
    switch (type) {
      case 0: return dv.getUint8(this.take(1));
      case 1: return dv.getInt8(this.take(1));
      case 2: return dv.getUint16(this.take(2), true);
      case 3: return dv.getInt16(this.take(2), true);
      case 4: return dv.getUint32(this.take(4), true);
      case 5: return dv.getInt32(this.take(4), true);
      case 6: return dv.getFloat32(this.take(4), true);
      case 7: return dv.getUint8(this.take(1)) !== 0;
      case 8: return this.str();
      case 9: {
        const t = this.u32();
        const n = this.len();
        const out: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) out[i] = this.value(t);
        return out;
      }
      case 10: return smallest(dv.getBigUint64(this.take(8), true));
      case 11: return smallest(dv.getBigInt64(this.take(8), true));
      case 12: return dv.getFloat64(this.take(8), true);
      default: throw new Error(`unknown metadata value type ${type}`);
    }
  }
}

const smallest = (v: bigint): number | bigint => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

export async function readGgufHeader(src: ByteSource): Promise<GgufHeader> {
  const fail = (detail: string): never => {
    throw new CheckpointError(src.name, detail);
  };
  if (src.size < 8) fail(`truncated: ${src.size} bytes, shorter than the 8-byte magic and version`);
  const head = await src.read(0, 8);
  const dv = new DataView(head.buffer, head.byteOffset, 8);
  if (dv.getUint32(0, true) !== MAGIC) {
    fail(`bad magic ${JSON.stringify(new TextDecoder().decode(head.subarray(0, 4)))} (bytes ${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}): not a GGUF file (expected "GGUF")`);
  }
  const version = dv.getUint32(4, true);
  if (version < 1 || version > 3) fail(`GGUF version ${version} is not supported (supported: 1, 2, 3${version > 0xffff ? '; a big-endian file?' : ''})`);

  for (let want = Math.min(src.size, 1 << 20); ; want = Math.min(src.size, want * 4)) {
    const r = new Reader(await src.read(0, want), version >= 2);
    try {
      r.pos = 8;
      const nTensors = r.len();
      const nKv = r.len();
      const metadata = new Map<string, GgufValue>();
      for (let i = 0; i < nKv; i++) {
        const key = r.str();
        metadata.set(key, r.value(r.u32()));
      }
      const infos: GgufTensorInfo[] = [];
      for (let i = 0; i < nTensors; i++) {
        const name = r.str();
        const nDims = r.u32();
        const dims = Array.from({ length: nDims }, () => r.len());
        infos.push({ name, dims, type: r.u32(), offset: r.u64() });
      }
      const align = Number(metadata.get('general.alignment') ?? 32);
      const dataStart = Math.ceil(r.pos / align) * align;
      for (const t of infos) t.offset += dataStart;
      return { version, metadata, tensors: infos, dataStart };
    } catch (e) {
      if (!(e instanceof NeedMore)) return fail(`corrupt header: ${(e as Error).message}`);
      if (want === src.size) return fail(`truncated: the header runs past the end of the file (${src.size} bytes)`);
    }
  }
}

// ---- GGUF llama → ModelConfig, HF tensor names, tokenizer

const LAYER_NAMES: Record<string, string> = {
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
};
const TOP_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

/** blk.3.attn_q.weight → model.layers.3.self_attn.q_proj.weight; undefined for tensors we do not use. */
export function hfNameOfGguf(name: string): string | undefined {
  const m = /^blk\.(\d+)\.(\w+)\.(weight|bias)$/.exec(name);
  if (!m) return TOP_NAMES[name];
  const hf = LAYER_NAMES[m[2]];
  return hf && `model.layers.${m[1]}.${hf}.${m[3]}`;
}

export async function openGguf(src: ByteSource): Promise<Checkpoint> {
  const header = await readGgufHeader(src);
  const md = header.metadata;
  const fail = (detail: string): never => {
    throw new CheckpointError(src.name, detail);
  };
  const arch = md.get('general.architecture');
  if (arch !== 'llama') fail(`general.architecture "${String(arch)}" is not supported (supported: llama)`);
  const int = (key: string, fallback?: number, min = 1): number => {
    const v = md.get(key) ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) return fail(`metadata ${key}: expected an integer ≥ ${min}, got ${String(v)}`);
    return v;
  };
  const float = (key: string, fallback: number): number => {
    const v = md.get(key) ?? fallback;
    if (typeof v !== 'number' || !(v > 0)) return fail(`metadata ${key}: expected a positive number, got ${String(v)}`);
    return shortestF32(v);
  };
  const scaling = md.get('llama.rope.scaling.type');
  if (scaling !== undefined && scaling !== 'none') fail(`llama.rope.scaling.type "${String(scaling)}" is not supported (supported: none)`);
  if (Number(md.get('llama.expert_count') ?? 0) > 0) fail('llama.expert_count > 0: already a mixture of experts; MoEfy loads dense models');

  // ---- tensors, renamed and reshaped to HF [out, in]
  const entries = new Map<string, TensorEntry>();
  for (const t of header.tensors) {
    const hf = hfNameOfGguf(t.name);
    if (!hf) continue;
    const typeName = GGML_TYPES[t.type] ?? `type ${t.type}`;
    const dtype = DTYPE_OF[typeName];
    if (!dtype) fail(`tensor "${t.name}" has ggml type ${typeName}, which MoEfy cannot load (supported: ${Object.keys(DTYPE_OF).join(', ')})`);
    if (dtype === 'Q8_0' && t.dims[0] % Q8_0_BLOCK !== 0) fail(`tensor "${t.name}": Q8_0 rows of ${t.dims[0]} are not whole blocks of ${Q8_0_BLOCK}`);
    const end = t.offset + byteLength(dtype, numel(t.dims));
    if (end > src.size) fail(`truncated: tensor "${t.name}" ends at byte ${end}, the file has ${src.size}`);
    entries.set(hf, { fileName: t.name, source: src, offset: t.offset, dtype, shape: [...t.dims].reverse() });
  }
  const embed = entries.get('model.embed_tokens.weight') ?? fail('missing tensor "token_embd.weight"');

  const dim = int('llama.embedding_length');
  const nHeads = int('llama.attention.head_count');
  const config: ModelConfig = {
    arch: 'llama',
    dim,
    hiddenDim: int('llama.feed_forward_length'),
    nLayers: int('llama.block_count'),
    nHeads,
    nKvHeads: int('llama.attention.head_count_kv', nHeads),
    headDim: int('llama.attention.key_length', dim / nHeads),
    vocabSize: embed.shape[0],
    maxSeqLen: int('llama.context_length'),
    normEps: float('llama.attention.layer_norm_rms_epsilon', 1e-5),
    ropeTheta: float('llama.rope.freq_base', 10000),
    ropeStyle: 'interleaved', // see the top of this file
    tiedEmbeddings: !entries.has('lm_head.weight'),
    qkvBias: false,
    bosId: int('tokenizer.ggml.bos_token_id', 1, 0),
    eosId: int('tokenizer.ggml.eos_token_id', 2, 0),
  };
  const weights = weightIndex(config, checkTensors(entries, config, src.name, 'the GGUF metadata'));
  const tokenizer = ggufTokenizer(src.name, md, config);
  checkTokenizer(tokenizer, config);
  return { config, weights, tokenizer };
}

/** The embedded SentencePiece vocabulary (tokenizer.ggml.model "llama"). */
export function ggufTokenizer(file: string, md: Map<string, GgufValue>, c: Pick<ModelConfig, 'bosId' | 'eosId'>): Tokenizer {
  const model = md.get('tokenizer.ggml.model');
  if (model !== 'llama') throw new CheckpointError(file, `tokenizer.ggml.model "${String(model)}" is not supported (supported: llama)`);
  const pieces = md.get('tokenizer.ggml.tokens');
  if (!Array.isArray(pieces)) throw new CheckpointError(file, 'no tokenizer.ggml.tokens array');
  const scores = md.get('tokenizer.ggml.scores');
  const types = md.get('tokenizer.ggml.token_type');
  return spmTokenizer(file, {
    pieces: pieces as string[],
    scores: Array.isArray(scores) ? (scores as number[]) : new Array<number>(pieces.length).fill(0),
    types: Array.isArray(types) ? (types as number[]) : undefined,
    bosId: c.bosId,
    eosId: c.eosId,
    unkId: Number(md.get('tokenizer.ggml.unknown_token_id') ?? 0),
  });
}

/** An f32 metadata value as its shortest decimal (9.99999974e-6 → 1e-5), so configs compare equal. */
function shortestF32(v: number): number {
  if (Math.fround(v) !== v) return v; // a float64 value: keep it
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}
