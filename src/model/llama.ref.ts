// Float64 CPU reference of the dense LLaMA-family forward (LLaMA, Mistral, Qwen2): the ground truth that the
// WebGPU forward and the ONNX export (src/model/onnx.ts) are checked against. Plain loops, float64 throughout,
// no caching, no cleverness: it reads like karpathy/llama2.c run.c `forward()` and Hugging Face
// modeling_llama.py `LlamaDecoderLayer.forward`, one causal prefill from position 0.
//
//   x = embed_tokens[ids]
//   for each layer:
//     h = input_layernorm(x)
//     x = x + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h)))     (causal, grouped-query)
//     h = post_attention_layernorm(x)
//     x = x + down_proj(silu(gate_proj(h)) * up_proj(h))                          (SwiGLU)
//   logits = lm_head(norm(x))
//
// Weights: Hugging Face names and layout ([out, in]), float32, converted to float64 as they are read.

import type { ModelConfig } from './config.ts';

// ----------------------------------------------------------------------------
// The building blocks, each one line of the math

/** nn.Linear with HF [out, in] weights: out[r] = Σ_c W[r, c] · x[c] (+ b[r]).  W (rows, cols), x (cols,), out (rows,) */
export function matvec(out: Float64Array, x: Float64Array, W: Float32Array, rows: number, cols: number, b?: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    let sum = b ? b[r] : 0;
    const row = r * cols;
    for (let c = 0; c < cols; c++) sum += W[row + c] * x[c];
    out[r] = sum;
  }
}

/** RMSNorm (Zhang & Sennrich 2019): out = x / sqrt(mean(x²) + eps) · w.  x, w, out (n,) */
export function rmsnorm(out: Float64Array, x: Float64Array, w: Float32Array, eps: number): void {
  const n = x.length;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) out[i] = x[i] * inv * w[i];
}

/**
 * Rotary position embedding (Su et al. 2021, RoFormer, arXiv:2104.09864, eq. 34), in place on every head of
 * `vec` (nHeads·headDim,) at position `pos`. Pair i (0 ≤ i < headDim/2) rotates by the angle pos · θ^(−2i/headDim):
 *   'half'        — HF rotate_half: the pair is (i, i + headDim/2)
 *   'interleaved' — llama2.c / Meta:  the pair is (2i, 2i + 1)
 */
export function rope(vec: Float64Array, nHeads: number, headDim: number, pos: number, theta: number, style: 'half' | 'interleaved'): void {
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(theta, (-2 * i) / headDim);
      const cos = Math.cos(angle), sin = Math.sin(angle);
      const a = base + (style === 'half' ? i : 2 * i);
      const b = base + (style === 'half' ? i + half : 2 * i + 1);
      const x0 = vec[a], x1 = vec[b];
      vec[a] = x0 * cos - x1 * sin;
      vec[b] = x0 * sin + x1 * cos;
    }
  }
}

/**
 * Causal grouped-query attention over a whole prefill: out[t, h] = Σ_{j ≤ t} softmax_j(q[t, h] · k[j, g] / √headDim) v[j, g],
 * where query head h reads kv head g = floor(h / (nHeads / nKvHeads)) (HF repeat_kv).
 * q (T, nHeads·headDim), k and v (T, nKvHeads·headDim), out (T, nHeads·headDim).
 */
export function attention(out: Float64Array, q: Float64Array, k: Float64Array, v: Float64Array,
                          T: number, nHeads: number, nKvHeads: number, headDim: number): void {
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  const groupSize = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const att = new Float64Array(T); // (T,) scores of one query against keys 0..t
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nHeads; h++) {
      const qh = t * qDim + h * headDim;
      const kvh = Math.floor(h / groupSize) * headDim;
      // scores = q · k / √d for keys 0..t (the causal mask: later keys are never looked at)
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let i = 0; i < headDim; i++) s += q[qh + i] * k[j * kvDim + kvh + i];
        att[j] = s * scale;
        if (att[j] > max) max = att[j];
      }
      // softmax
      let sum = 0;
      for (let j = 0; j <= t; j++) { att[j] = Math.exp(att[j] - max); sum += att[j]; }
      // weighted sum of the values
      for (let i = 0; i < headDim; i++) {
        let o = 0;
        for (let j = 0; j <= t; j++) o += att[j] * v[j * kvDim + kvh + i];
        out[qh + i] = o / sum;
      }
    }
  }
}

/** SiLU (swish): x · sigmoid(x). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

// ----------------------------------------------------------------------------
// The forward

/** Another FFN for layer l (e.g. a MoE block): h = post_attention_layernorm(x) [T, dim] → its output [T, dim], or undefined for the dense one. */
export type FfnOverrideRef = (layer: number, h: Float64Array) => Float64Array | undefined;

/** A gate on layer l's attention output (an attention MoE): h = input_layernorm(x) [T, dim], attn [T, nHeads·headDim] → the gated attn, or undefined. */
export type AttnGateRef = (layer: number, h: Float64Array, attn: Float64Array) => Float64Array | undefined;

/** Logits (T, vocabSize) of a causal prefill of `ids` from position 0, in float64. */
export function llamaForwardRef(
  config: ModelConfig, weights: Map<string, Float32Array>, ids: number[], ffn?: FfnOverrideRef, attnGate?: AttnGateRef,
): Float64Array {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize, normEps, ropeTheta, ropeStyle } = config;
  const T = ids.length;
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  const w = (name: string): Float32Array => {
    const a = weights.get(name);
    if (!a) throw new Error(`llamaForwardRef: missing weight ${name}`);
    return a;
  };
  const bias = (name: string): Float32Array | undefined => (config.qkvBias ? w(name) : undefined);
  const row = (a: Float64Array, t: number, n: number): Float64Array => a.subarray(t * n, (t + 1) * n);

  // run state, allocated once
  const x = new Float64Array(T * dim);         // (T, dim) the residual stream
  const xb = new Float64Array(T * dim);        // (T, dim) a block's normed input, then its output
  const q = new Float64Array(T * qDim);        // (T, nHeads·headDim)
  const k = new Float64Array(T * kvDim);       // (T, nKvHeads·headDim)
  const v = new Float64Array(T * kvDim);       // (T, nKvHeads·headDim)
  const attn = new Float64Array(T * qDim);     // (T, nHeads·headDim) attention output, before o_proj
  const hb = new Float64Array(hiddenDim);      // (hiddenDim,) silu(gate_proj(h)) * up_proj(h)
  const hb2 = new Float64Array(hiddenDim);     // (hiddenDim,) up_proj(h)
  const logits = new Float64Array(T * vocabSize); // (T, vocabSize)

  // ---- embedding: x = embed_tokens[ids] ----
  const embed = w('model.embed_tokens.weight'); // (vocabSize, dim)
  for (let t = 0; t < T; t++) {
    if (!(ids[t] >= 0 && ids[t] < vocabSize)) throw new Error(`llamaForwardRef: token id ${ids[t]} outside [0, ${vocabSize})`);
    for (let i = 0; i < dim; i++) x[t * dim + i] = embed[ids[t] * dim + i];
  }

  for (let l = 0; l < nLayers; l++) {
    const p = `model.layers.${l}`;

    // ---- attention: x = x + o_proj(attention(rope(q_proj(h)), rope(k_proj(h)), v_proj(h))), h = input_layernorm(x) ----
    for (let t = 0; t < T; t++) {
      const h = row(xb, t, dim);
      rmsnorm(h, row(x, t, dim), w(`${p}.input_layernorm.weight`), normEps);
      matvec(row(q, t, qDim), h, w(`${p}.self_attn.q_proj.weight`), qDim, dim, bias(`${p}.self_attn.q_proj.bias`));
      matvec(row(k, t, kvDim), h, w(`${p}.self_attn.k_proj.weight`), kvDim, dim, bias(`${p}.self_attn.k_proj.bias`));
      matvec(row(v, t, kvDim), h, w(`${p}.self_attn.v_proj.weight`), kvDim, dim, bias(`${p}.self_attn.v_proj.bias`));
      rope(row(q, t, qDim), nHeads, headDim, t, ropeTheta, ropeStyle);
      rope(row(k, t, kvDim), nKvHeads, headDim, t, ropeTheta, ropeStyle);
    }
    attention(attn, q, k, v, T, nHeads, nKvHeads, headDim);
    const gated = attnGate?.(l, xb, attn);   // xb still holds h
    if (gated) attn.set(gated);
    for (let t = 0; t < T; t++) {
      const o = row(xb, t, dim);
      matvec(o, row(attn, t, qDim), w(`${p}.self_attn.o_proj.weight`), dim, qDim);
      for (let i = 0; i < dim; i++) x[t * dim + i] += o[i];
    }

    // ---- MLP: x = x + down_proj(silu(gate_proj(h)) * up_proj(h)), h = post_attention_layernorm(x) ----
    for (let t = 0; t < T; t++) rmsnorm(row(xb, t, dim), row(x, t, dim), w(`${p}.post_attention_layernorm.weight`), normEps);
    const y = ffn?.(l, xb);
    if (y) {
      for (let i = 0; i < x.length; i++) x[i] += y[i];
      continue;
    }
    for (let t = 0; t < T; t++) {
      const h = row(xb, t, dim);
      matvec(hb, h, w(`${p}.mlp.gate_proj.weight`), hiddenDim, dim);
      matvec(hb2, h, w(`${p}.mlp.up_proj.weight`), hiddenDim, dim);
      for (let i = 0; i < hiddenDim; i++) hb[i] = silu(hb[i]) * hb2[i];
      matvec(h, hb, w(`${p}.mlp.down_proj.weight`), dim, hiddenDim);
      for (let i = 0; i < dim; i++) x[t * dim + i] += h[i];
    }
  }

  // ---- final norm and classifier: logits = lm_head(norm(x)) (lm_head = embed_tokens when tied) ----
  const lmHead = w(config.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'); // (vocabSize, dim)
  for (let t = 0; t < T; t++) {
    const h = row(xb, t, dim);
    rmsnorm(h, row(x, t, dim), w('model.norm.weight'), normEps);
    matvec(row(logits, t, vocabSize), h, lmHead, vocabSize, dim);
  }
  return logits;
}
