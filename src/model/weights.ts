// The weights of a dense checkpoint, whatever file they came from: HF tensor names and HF [out, in]
// shapes, read one tensor at a time and converted to f32 on the host (the GPU forward uploads each one).
import type { ModelConfig } from './config.ts';
import { CheckpointError, checkRange, type ByteSource } from './source.ts';
import type { Tokenizer } from './tokenizer.ts';

export type DType = 'F32' | 'F16' | 'BF16' | 'Q8_0';

export interface WeightIndex {
  config: ModelConfig;
  /** The tensors the forward needs, in `expectedShapes` order (layer by layer). */
  names(): string[];
  /** HF convention: [out, in] for projections, [vocab, dim] for embeddings, [dim] for norms. */
  shape(name: string): number[];
  /** The stored dtype; `read` always returns f32. */
  dtype(name: string): DType;
  /** One tensor as a fresh f32 array (row-major over `shape`). */
  read(name: string): Promise<Float32Array>;
  /** Bytes of f32 the forward will hold for all `names()` (numel × 4, summed). */
  f32Bytes(): number;
}

/** What a loader opened: the blueprint, the weights and the tokenizer that came with them. */
export interface Checkpoint {
  config: ModelConfig;
  weights: WeightIndex;
  tokenizer: Tokenizer;
}

/** Where one tensor's bytes are, and how to read them. */
export interface TensorEntry {
  /** The name in the file (for error messages), e.g. GGUF's blk.0.attn_q.weight */
  fileName: string;
  source: ByteSource;
  offset: number;
  dtype: DType;
  /** HF [out, in] */
  shape: number[];
}

// ---- the tensors a config implies, in HF names and shapes (modeling_llama.py / modeling_qwen2.py)

export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const m = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, c.dim]]]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + 'input_layernorm.weight', [c.dim]);
    m.set(p + 'self_attn.q_proj.weight', [q, c.dim]);
    m.set(p + 'self_attn.k_proj.weight', [kv, c.dim]);
    m.set(p + 'self_attn.v_proj.weight', [kv, c.dim]);
    if (c.qkvBias) {
      m.set(p + 'self_attn.q_proj.bias', [q]);
      m.set(p + 'self_attn.k_proj.bias', [kv]);
      m.set(p + 'self_attn.v_proj.bias', [kv]);
    }
    m.set(p + 'self_attn.o_proj.weight', [c.dim, q]);
    m.set(p + 'post_attention_layernorm.weight', [c.dim]);
    m.set(p + 'mlp.gate_proj.weight', [c.hiddenDim, c.dim]);
    m.set(p + 'mlp.up_proj.weight', [c.hiddenDim, c.dim]);
    m.set(p + 'mlp.down_proj.weight', [c.dim, c.hiddenDim]);
  }
  m.set('model.norm.weight', [c.dim]);
  if (!c.tiedEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.dim]);
  return m;
}

/**
 * Keeps the entries `expectedShapes` lists, in that order, after checking each is present with the
 * implied shape. `file` names the weights file; `impliedBy` what the shapes come from ('config.json').
 * Extra tensors (rotary inv_freq, a duplicate lm_head of a tied model) are left out.
 */
export function checkTensors(
  entries: ReadonlyMap<string, TensorEntry>,
  config: ModelConfig,
  file: string,
  impliedBy: string,
): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  for (const [name, want] of expectedShapes(config)) {
    const e = entries.get(name);
    if (!e) throw new CheckpointError(file, `missing tensor "${name}" (${impliedBy} implies shape ${fmtShape(want)})`);
    if (e.shape.length !== want.length || e.shape.some((d, i) => d !== want[i])) {
      const stored = e.fileName === name ? '' : ` (${e.fileName} in the file)`;
      throw new CheckpointError(
        file,
        `tensor "${name}"${stored} has shape ${fmtShape(e.shape)} but ${impliedBy} implies ${fmtShape(want)} ` +
          `(hidden_size ${config.dim}, intermediate_size ${config.hiddenDim}, heads ${config.nHeads}/${config.nKvHeads} kv × head_dim ${config.headDim}, vocab ${config.vocabSize})`,
      );
    }
    out.set(name, e);
  }
  return out;
}

/** A WeightIndex over located tensors. */
export function weightIndex(config: ModelConfig, entries: ReadonlyMap<string, TensorEntry>): WeightIndex {
  const get = (name: string): TensorEntry => {
    const e = entries.get(name);
    if (!e) throw new Error(`no tensor "${name}" in this checkpoint (it has ${entries.size}: ${[...entries.keys()].slice(0, 4).join(', ')}, …)`);
    return e;
  };
  return {
    config,
    names: () => [...entries.keys()],
    shape: (name) => [...get(name).shape],
    dtype: (name) => get(name).dtype,
    async read(name) {
      const e = get(name);
      const n = numel(e.shape);
      const len = byteLength(e.dtype, n);
      checkRange(e.source, e.offset, len);
      return decode(e.dtype, await e.source.read(e.offset, len), n);
    },
    f32Bytes: () => [...entries.values()].reduce((s, e) => s + numel(e.shape) * 4, 0),
  };
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---- dtype decoding (little-endian, as every format here stores it)

export const Q8_0_BLOCK = 32; // ggml block_q8_0: f16 scale d, then 32 int8; x = d * q
const Q8_0_BYTES = 2 + Q8_0_BLOCK;

export function byteLength(dtype: DType, n: number): number {
  switch (dtype) {
    case 'F32':
      return n * 4;
    case 'F16':
    case 'BF16':
      return n * 2;
    case 'Q8_0':
      return (n / Q8_0_BLOCK) * Q8_0_BYTES;
  }
}

export function decode(dtype: DType, bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  switch (dtype) {
    case 'F32':
      new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer); // bf16 is the top half of an f32
      for (let i = 0; i < n; i++) u[i] = (bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16;
      return out;
    }
    case 'F16': {
      const t = f16Table();
      for (let i = 0; i < n; i++) out[i] = t[bytes[2 * i] | (bytes[2 * i + 1] << 8)];
      return out;
    }
    case 'Q8_0': {
      const t = f16Table();
      const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let b = 0; b < n / Q8_0_BLOCK; b++) {
        const at = b * Q8_0_BYTES;
        const d = t[bytes[at] | (bytes[at + 1] << 8)];
        for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * q[at + 2 + j];
      }
      return out;
    }
  }
}

let F16: Float32Array | undefined;
/** All 65536 IEEE half values as f32 (subnormals, ±inf and NaN included). */
export function f16Table(): Float32Array {
  if (F16) return F16;
  F16 = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    F16[h] = e === 0 ? s * f * 2 ** -24 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * 2 ** (e - 15);
  }
  return F16;
}
