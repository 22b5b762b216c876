// The LLaMA-family forward on the engine, in the spirit of llama2.c's run.c: a Config (ModelConfig),
// the weights on the GPU, run-state buffers allocated once, and one forward() that reads top to bottom
// like HF modeling_llama.py. forward() allocates nothing; it records dispatches for one chunk of tokens
// and leaves the K/V caches filled for the next chunk (prefill and decode are the same code).
//
// Each layer's FFN is a function slot (`ffn[l]`), dense SwiGLU by default: MoE conversion swaps a
// layer's FFN block by configuration and never forks this forward. Likewise each layer's attention output
// passes an optional gate slot (`attnGate[l]`) before o_proj: an attention MoE sets it.
import type { Gpu } from '../gpu/device.ts';
import { GpuLimitError } from '../gpu/errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { matmul } from '../ops/matmul.ts';
import { rmsNorm } from '../ops/norm.ts';
import { rope } from '../ops/rope.ts';
import { embedding } from '../ops/embedding.ts';
import { attention, writeKv } from '../ops/attention.ts';
import { swiglu } from '../ops/activation.ts';
import { add, addBias } from '../ops/elementwise.ts';
import type { ModelConfig } from './config.ts';
import { expectedShapes, type WeightIndex } from './weights.ts';

// ----------------------------------------------------------------------------------------------- weights

export interface LayerWeights {
  input_layernorm: Tensor; // (dim)
  q_proj: Tensor; // (nHeads·headDim, dim)
  k_proj: Tensor; // (nKvHeads·headDim, dim)
  v_proj: Tensor; // (nKvHeads·headDim, dim)
  q_bias?: Tensor; // (nHeads·headDim)       Qwen2 only
  k_bias?: Tensor; // (nKvHeads·headDim)
  v_bias?: Tensor; // (nKvHeads·headDim)
  o_proj: Tensor; // (dim, nHeads·headDim)
  post_attention_layernorm: Tensor; // (dim)
  gate_proj: Tensor; // (hiddenDim, dim)  Wg
  up_proj: Tensor; // (hiddenDim, dim)    Wu
  down_proj: Tensor; // (dim, hiddenDim)  Wd
}

export interface Weights {
  embed_tokens: Tensor; // (vocab, dim)
  layers: LayerWeights[];
  norm: Tensor; // (dim)
  lm_head: Tensor; // (vocab, dim); the same tensor as embed_tokens when tied
}

/** An FFN block: reads x (T, dim), the post-attention-norm hidden states, and writes f(x) into out. */
export type FfnBlock = (x: Tensor, out: Tensor) => void;

/** Sees each layer's FFN input x and output f(x) (T, dim) right after the FFN ran; must not write them. */
export type FfnTap = (layer: number, x: Tensor, fx: Tensor) => void;

/**
 * An attention MoE's gate (LLaMA-MoE v2, src/moe/attention.ts): reads the layer's normed
 * input xn (T, dim) and attention output att (T, nHeads, headDim), returns what o_proj reads instead.
 */
export type AttnGate = (xn: Tensor, att: Tensor) => Tensor;

// ----------------------------------------------------------------------------------------------- run state

interface RunState {
  ids: Tensor; // (chunk) u32
  x: Tensor; // (chunk, dim) residual stream
  xn: Tensor; // (chunk, dim) normalised x
  q: Tensor; // (chunk, nHeads, headDim)
  k: Tensor; // (chunk, nKvHeads, headDim)
  v: Tensor; // (chunk, nKvHeads, headDim)
  att: Tensor; // (chunk, nHeads, headDim)
  fx: Tensor; // (chunk, dim) FFN output
  gate: Tensor; // (chunk, hiddenDim)
  up: Tensor; // (chunk, hiddenDim)
  h: Tensor; // (chunk, hiddenDim) silu(gate) ⊙ up
  logits: Tensor; // (chunk, vocab)
  kCache: Tensor[]; // per layer (seqLen, nKvHeads, headDim)
  vCache: Tensor[]; // per layer (seqLen, nKvHeads, headDim)
}

export interface LoadOptions {
  /** Longest chunk forward() takes at once (prefill is split into chunks of this size). */
  chunk?: number;
  /** KV-cache length; the model's maxSeqLen by default. */
  seqLen?: number;
  onProgress?: (loadedBytes: number, totalBytes: number, tensor: string) => void;
}

export class LlamaModel {
  /** Tokens already in the K/V caches: the position of the next token. */
  pos = 0;
  /** Per-layer FFN block; dense SwiGLU unless replaced (MoE conversion). */
  readonly ffn: FfnBlock[];
  /** Per-layer attention gate; none (dense attention) unless set. */
  readonly attnGate: (AttnGate | undefined)[];
  readonly chunk: number;
  readonly seqLen: number;

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    readonly weights: Weights,
    private readonly s: RunState,
    /** Bytes of GPU memory the weights and run state occupy. */
    readonly memoryBytes: { weights: number; runState: number },
  ) {
    this.chunk = s.x.shape[0];
    this.seqLen = s.kCache[0]?.shape[0] ?? 0;
    this.ffn = weights.layers.map((w) => (x, out) => this.denseFfn(w, x, out));
    this.attnGate = weights.layers.map(() => undefined);
  }

  /** Puts layer l's dense SwiGLU FFN back in its slot (undoes a MoE conversion). */
  restoreDense(l: number): void {
    this.ffn[l] = (x, out) => this.denseFfn(this.weights.layers[l], x, out);
  }

  /** Streams weights to the GPU one tensor at a time (one host copy at most) and allocates the run state. */
  static async load(gpu: Gpu, index: WeightIndex, opts: LoadOptions = {}): Promise<LlamaModel> {
    const c = index.config;
    const chunk = opts.chunk ?? Math.min(256, c.maxSeqLen);
    const seqLen = opts.seqLen ?? c.maxSeqLen;
    preflight(gpu, c, chunk, seqLen);
    const total = index.f32Bytes();
    let loaded = 0;
    const uploaded: Tensor[] = [];
    const get = async (name: string): Promise<Tensor> => {
      const t = gpu.upload(await index.read(name), index.shape(name), name);
      uploaded.push(t);
      loaded += t.byteSize;
      opts.onProgress?.(loaded, total, name);
      return t;
    };
    try {
      return await LlamaModel.build(gpu, c, get, chunk, seqLen, () => loaded);
    } catch (e) {
      // A bad tensor half-way (or a cancel) must not strand the weights already on the GPU.
      for (const t of uploaded) t.release();
      throw e;
    }
  }

  private static async build(
    gpu: Gpu,
    c: ModelConfig,
    get: (name: string) => Promise<Tensor>,
    chunk: number,
    seqLen: number,
    loaded: () => number,
  ): Promise<LlamaModel> {
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      layers.push({
        input_layernorm: await get(`${p}input_layernorm.weight`),
        q_proj: await get(`${p}self_attn.q_proj.weight`),
        k_proj: await get(`${p}self_attn.k_proj.weight`),
        v_proj: await get(`${p}self_attn.v_proj.weight`),
        ...(c.qkvBias && {
          q_bias: await get(`${p}self_attn.q_proj.bias`),
          k_bias: await get(`${p}self_attn.k_proj.bias`),
          v_bias: await get(`${p}self_attn.v_proj.bias`),
        }),
        o_proj: await get(`${p}self_attn.o_proj.weight`),
        post_attention_layernorm: await get(`${p}post_attention_layernorm.weight`),
        gate_proj: await get(`${p}mlp.gate_proj.weight`),
        up_proj: await get(`${p}mlp.up_proj.weight`),
        down_proj: await get(`${p}mlp.down_proj.weight`),
      });
    }
    const embed_tokens = await get('model.embed_tokens.weight');
    const weights: Weights = {
      embed_tokens,
      layers,
      norm: await get('model.norm.weight'),
      lm_head: c.tiedEmbeddings ? embed_tokens : await get('lm_head.weight'),
    };
    const { dim, hiddenDim, nHeads, nKvHeads, headDim, vocabSize } = c;
    const t = (shape: number[], label: string) => gpu.tensor(shape, 'f32', label);
    const s: RunState = {
      ids: gpu.tensor([chunk], 'u32', 'ids'),
      x: t([chunk, dim], 'x'),
      xn: t([chunk, dim], 'xn'),
      q: t([chunk, nHeads, headDim], 'q'),
      k: t([chunk, nKvHeads, headDim], 'k'),
      v: t([chunk, nKvHeads, headDim], 'v'),
      att: t([chunk, nHeads, headDim], 'att'),
      fx: t([chunk, dim], 'fx'),
      gate: t([chunk, hiddenDim], 'gate'),
      up: t([chunk, hiddenDim], 'up'),
      h: t([chunk, hiddenDim], 'h'),
      logits: t([chunk, vocabSize], 'logits'),
      kCache: layers.map((_, l) => t([seqLen, nKvHeads, headDim], `kCache.${l}`)),
      vCache: layers.map((_, l) => t([seqLen, nKvHeads, headDim], `vCache.${l}`)),
    };
    const runState = Object.values(s).flat().reduce((n, x: Tensor) => n + x.byteSize, 0);
    return new LlamaModel(gpu, c, weights, s, { weights: loaded(), runState });
  }

  /** Empties the K/V caches (a new sequence starts at position 0). */
  reset(): void {
    this.pos = 0;
  }

  /**
   * Runs ids (at most `chunk` of them) at positions pos .. pos+T−1 and returns the logits (T, vocab),
   * valid until the next forward(). Taps see each layer's FFN input and output.
   */
  forward(ids: readonly number[], taps?: FfnTap): Tensor {
    const c = this.config;
    const T = ids.length;
    if (T < 1 || T > this.chunk) throw new Error(`forward: ${T} tokens; this model takes 1..${this.chunk} per call`);
    if (this.pos + T > this.seqLen) throw new Error(`forward: position ${this.pos + T} exceeds the ${this.seqLen}-token KV cache`);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`forward: token id ${id} is outside the vocabulary [0, ${c.vocabSize})`);
    }
    const s = this.s;
    const w = this.weights;
    const [x, xn, q, k, v, att, fx] = [s.x, s.xn, s.q, s.k, s.v, s.att, s.fx].map((b) => b.rows(T));
    const ids_ = s.ids.rows(T);
    this.gpu.write(ids_, Uint32Array.from(ids));

    // x = embed_tokens[ids]
    embedding(w.embed_tokens, ids_, { out: x });

    for (let l = 0; l < c.nLayers; l++) {
      const L = w.layers[l];
      // ---- attention: x = x + o_proj(attn(rope(q_proj(norm(x))), rope(k_proj(..)), v_proj(..)))
      rmsNorm(x, L.input_layernorm, { eps: c.normEps, out: xn });
      this.project(xn, L.q_proj, L.q_bias, q);
      this.project(xn, L.k_proj, L.k_bias, k);
      this.project(xn, L.v_proj, L.v_bias, v);
      const interleaved = c.ropeStyle === 'interleaved';
      rope(q, { pos0: this.pos, theta: c.ropeTheta, interleaved });
      rope(k, { pos0: this.pos, theta: c.ropeTheta, interleaved });
      writeKv(s.kCache[l], s.vCache[l], k, v, this.pos);
      attention(q, s.kCache[l], s.vCache[l], { past: this.pos, out: att });
      const attOut = this.attnGate[l]?.(xn, att) ?? att;
      matmul(attOut.view([T, c.nHeads * c.headDim]), L.o_proj, { transB: true, out: x, accumulate: true });

      // ---- feed-forward: x = x + ffn(norm(x))
      rmsNorm(x, L.post_attention_layernorm, { eps: c.normEps, out: xn });
      this.ffn[l](xn, fx);
      taps?.(l, xn, fx);
      add(x, fx, 'inplace');
    }

    // logits = lm_head(norm(x))
    rmsNorm(x, w.norm, { eps: c.normEps, out: xn });
    const logits = s.logits.rows(T);
    matmul(xn, w.lm_head, { transB: true, out: logits });
    this.pos += T;
    return logits;
  }

  /** Runs a whole sequence from the current position in chunks; returns the last chunk's logits. */
  prefill(ids: readonly number[], taps?: FfnTap): Tensor {
    let logits: Tensor | null = null;
    for (let i = 0; i < ids.length; i += this.chunk) logits = this.forward(ids.slice(i, i + this.chunk), taps);
    if (!logits) throw new Error('prefill: no tokens');
    return logits;
  }

  /** Dense SwiGLU FFN: out = down_proj(silu(gate_proj x) ⊙ up_proj x). */
  private denseFfn(L: LayerWeights, x: Tensor, out: Tensor): void {
    const T = x.shape[0];
    const [gate, up, h] = [this.s.gate, this.s.up, this.s.h].map((b) => b.rows(T));
    matmul(x, L.gate_proj, { transB: true, out: gate });
    matmul(x, L.up_proj, { transB: true, out: up });
    swiglu(gate, up, { out: h });
    matmul(h, L.down_proj, { transB: true, out });
  }

  /** out (T, heads, headDim) = x·Wᵀ (+ bias). */
  private project(x: Tensor, W: Tensor, bias: Tensor | undefined, out: Tensor): void {
    const flat = out.view([x.shape[0], W.shape[0]]);
    matmul(x, W, { transB: true, out: flat });
    if (bias) addBias(flat, bias, 'inplace');
  }

  release(): void {
    const seen = new Set<Tensor>();
    const all = [...Object.values(this.s).flat(), this.weights.embed_tokens, this.weights.norm, this.weights.lm_head, ...this.weights.layers.flatMap((L) => Object.values(L))];
    for (const t of all as Tensor[]) {
      if (!seen.has(t)) t.release();
      seen.add(t);
    }
  }
}

/** Fails before any upload when a weight or buffer exceeds the adapter's limits, naming which and by how much. */
function preflight(gpu: Gpu, c: ModelConfig, chunk: number, seqLen: number): void {
  const buffers: [string, number][] = [...expectedShapes(c)].map(([name, shape]) => [name, shape.reduce((a, b) => a * b, 4)]);
  buffers.push(['logits run state', chunk * c.vocabSize * 4], ['KV cache (one layer)', seqLen * c.nKvHeads * c.headDim * 4]);
  for (const [name, bytes] of buffers) {
    for (const limit of ['maxBufferSize', 'maxStorageBufferBindingSize'] as const) {
      if (bytes > gpu.limits[limit]) throw new GpuLimitError(`model tensor ${name}`, limit, bytes, gpu.limits[limit]);
    }
  }
}
