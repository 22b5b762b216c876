// The training ops of the LLaMA forward, each a kernel call (src/ops) that records its gradient on the tape
// (tape.ts). Activations are 2-D [T, width]; ops that see heads view them [T, heads, headDim].
import type { Tensor } from '../gpu/tensor.ts';
import { embedding, embeddingBackward } from '../ops/embedding.ts';
import { rmsNorm as rmsNormKernel, rmsNormBackward } from '../ops/norm.ts';
import { matmul } from '../ops/matmul.ts';
import { add as addKernel, addBias } from '../ops/elementwise.ts';
import { rope as ropeKernel, ropeBackward } from '../ops/rope.ts';
import { attentionTrain, attentionBackward } from '../ops/attention.ts';
import { swiglu as swigluKernel, swigluBackward } from '../ops/activation.ts';
import { crossEntropy, crossEntropyBackward, klDivergence, klDivergenceBackward } from '../ops/softmax.ts';
import type { Gpu } from '../gpu/device.ts';
import type { Tape, Var } from './tape.ts';

/** x = table[ids]: table [vocab, dim], ids u32 [T] (read again by the backward) → [T, dim]. */
export function embed(t: Tape, table: Var, ids: Tensor): Var {
  const [vocab, dim] = table.shape;
  const y = t.output([ids.shape[0], dim], 'embed', table);
  embedding(table.value, ids, { out: y.value });
  t.record([y], () => t.grads([table], ([d], acc) => embeddingBackward(ids, y.grad!, vocab, { out: d, accumulate: acc }), true));
  return y;
}

/** LlamaRMSNorm: y = x / sqrt(mean(x²) + eps) · weight over the last dim. x [T, dim], weight [dim]. */
export function rmsNorm(t: Tape, x: Var, weight: Var, eps: number): Var {
  const y = t.output(x.shape, 'rmsNorm', x, weight);
  rmsNormKernel(x.value, weight.value, { eps, out: y.value });
  t.record([y], () => t.grads([x, weight], ([dx, dWeight], accumulate) => {
    rmsNormBackward(x.value, weight.value, y.grad!, { eps, accumulate, out: { dx, dWeight } });
  }, true));
  return y;
}

/** A linear layer as HF stores it: weight [out, in], optional bias [out], optional LoRA adapter. */
export interface Linear {
  weight: Var;
  bias?: Var;
  /** LoRA (Hu et al. 2021, arXiv:2106.09685, eq. 3): h = W x + scale·B A x, A [r, in], B [out, r] */
  lora?: { A: Var; B: Var; scale: number };
}

/** y = x·Wᵀ (+ bias) (+ scale·(x·Aᵀ)·Bᵀ): x [T, in] → [T, out]. */
export function linear(t: Tape, x: Var, L: Linear): Var {
  const { weight: W, bias, lora } = L;
  const T = x.shape[0];
  const out = W.shape[0];
  const y = t.output([T, out], 'linear', x, W, ...(bias ? [bias] : []), ...(lora ? [lora.A, lora.B] : []));
  matmul(x.value, W.value, { transB: true, out: y.value });
  if (bias) addBias(y.value, bias.value, 'inplace');
  // x·Aᵀ [T, r] is kept for ∂L/∂B
  const xa = lora ? t.gpu.tensor([T, lora.A.shape[0]], 'f32', 'lora.xA') : null;
  if (lora && xa) {
    matmul(x.value, lora.A.value, { transB: true, out: xa });
    matmul(xa, lora.B.value, { transB: true, alpha: lora.scale, accumulate: true, out: y.value });
  }
  t.record([y], () => {
    const dy = y.grad!;
    // ∂L/∂(x·Aᵀ) = scale·dy·B [T, r], for ∂L/∂A and ∂L/∂x
    const dxa = lora && (x.requiresGrad || lora.A.requiresGrad) ? t.gpu.tensor([T, lora.A.shape[0]], 'f32', 'lora.dxA') : null;
    if (lora && dxa) matmul(dy, lora.B.value, { alpha: lora.scale, out: dxa });
    t.grads([x], ([dx], accumulate) => {
      matmul(dy, W.value, { out: dx, accumulate });
      if (lora && dxa) matmul(dxa, lora.A.value, { out: dx, accumulate: true });
    }, true);
    t.grads([W], ([dW], accumulate) => matmul(dy, x.value, { transA: true, out: dW, accumulate }), true);
    // ∂L/∂bias = Σ_t dy[t] = 1ᵀ·dy
    if (bias) t.grads([bias], ([db], accumulate) => matmul(ones(t.gpu, T), dy, { out: db.view([1, out]), accumulate }), true);
    if (lora && xa) {
      t.grads([lora.B], ([dB], accumulate) => matmul(dy, xa, { transA: true, alpha: lora.scale, out: dB, accumulate }), true);
      if (dxa) t.grads([lora.A], ([dA], accumulate) => matmul(dxa, x.value, { transA: true, out: dA, accumulate }), true);
    }
    dxa?.release();
  }, xa ? [xa] : []);
  return y;
}

export interface RopeHeads {
  heads: number;
  theta: number;
  interleaved: boolean;
}

/** RoPE on every head of x [T, heads·headDim], positions 0..T−1. */
export function rope(t: Tape, x: Var, h: RopeHeads): Var {
  const [T, width] = x.shape;
  const shape = [T, h.heads, width / h.heads];
  const opts = { pos0: 0, theta: h.theta, interleaved: h.interleaved };
  const y = t.output(x.shape, 'rope', x);
  ropeKernel(x.value.view(shape), { ...opts, out: y.value.view(shape) });
  t.record([y], () => t.grads([x], ([dx]) => ropeBackward(y.grad!.view(shape), { ...opts, out: dx.view(shape) })));
  return y;
}

/** Causal grouped-query attention: q [T, nHeads·D], k and v [T, nKvHeads·D] → [T, nHeads·D]. */
export function attention(t: Tape, q: Var, k: Var, v: Var, nHeads: number, nKvHeads: number): Var {
  const T = q.shape[0];
  const D = q.shape[1] / nHeads;
  const [q3, k3, v3] = [[q, nHeads], [k, nKvHeads], [v, nKvHeads]].map(([x, H]) => (x as Var).value.view([T, H as number, D]));
  const y = t.output(q.shape, 'attention', q, k, v);
  const y3 = y.value.view([T, nHeads, D]);
  const lse = t.gpu.tensor([T, nHeads], 'f32', 'attention.lse');
  attentionTrain(q3, k3, v3, { out: { out: y3, lse } });
  t.record([y], () => t.grads([q, k, v], ([dq, dk, dv]) => {
    attentionBackward(q3, k3, v3, y3, lse, y.grad!.view([T, nHeads, D]), {
      out: { dq: dq.view([T, nHeads, D]), dk: dk.view([T, nKvHeads, D]), dv: dv.view([T, nKvHeads, D]) },
    });
  }), [lse]);
  return y;
}

/** LLaMA's MLP activation: silu(gate) ⊙ up. */
export function swiglu(t: Tape, gate: Var, up: Var): Var {
  const y = t.output(gate.shape, 'swiglu', gate, up);
  swigluKernel(gate.value, up.value, { out: y.value });
  t.record([y], () => t.grads([gate, up], ([dGate, dUp]) => swigluBackward(gate.value, up.value, y.grad!, { dGate, dUp })));
  return y;
}

/** a + b (the residual stream). */
export function add(t: Tape, a: Var, b: Var): Var {
  const y = t.output(a.shape, 'add', a, b);
  addKernel(a.value, b.value, y.value);
  t.record([y], () => {
    for (const x of [a, b]) t.grads([x], ([d], acc) => (acc ? addKernel(d, y.grad!, 'inplace') : t.gpu.copy(y.grad!, d)), true);
  });
  return y;
}

export interface HeadLossOptions {
  /** next-token ids: u32 [T] */
  targets: Tensor;
  /** the objective is ceScale·Σ_t CE_t (+ klScale·Σ_t KL_t): 1/tokens for a mean over a step's tokens */
  ceScale: number;
  /** distillation (Hinton et al. 2015, arXiv:1503.02531): teacher logits [T, vocab] and the KL term's weight */
  teacher?: { logits: Tensor; klScale: number };
  /** rows of logits computed at a time: the [T, vocab] logits never exist at once */
  chunkRows: number;
  /** per-row losses are written at rows offset .. offset+T−1 of ce [≥ offset+T] (and kl with a teacher) */
  out: { ce: Tensor; kl?: Tensor; offset: number };
}

/**
 * logits = h·headᵀ and the loss CE(logits, targets) (+ KL(teacher ‖ softmax(logits))), in chunks of rows.
 * The loss is the last op, so its gradient needs nothing from later: each chunk's ∂L/∂logits is turned into
 * ∂L/∂h rows and ∂L/∂head at once and the chunk's logits are dropped, as in the fused linear cross-entropy
 * of Liger Kernel (Hsu et al. 2024, arXiv:2410.10989). On a tape that does not record, losses only.
 * h [T, dim], head [vocab, dim] (lm_head, or embed_tokens when tied).
 */
export function lmHeadLoss(t: Tape, h: Var, head: Var, o: HeadLossOptions): void {
  const [T, dim] = h.shape;
  const V = head.shape[0];
  const R = Math.min(o.chunkRows, T);
  const whole = R === T;   // one chunk: its rows are the inputs themselves, nothing is copied
  const grad = t.needs(h, head);
  const gpu = t.gpu;
  const buf = (shape: number[], label: string, dtype: 'f32' | 'u32' = 'f32') => gpu.tensor(shape, dtype, `lmHeadLoss.${label}`);
  const logits = buf([R, V], 'logits'), ce = buf([R], 'ce'), kl = o.teacher ? buf([R], 'kl') : null;
  const hc = whole ? null : buf([R, dim], 'h'), tc = whole ? null : buf([R], 'targets', 'u32');
  const pc = o.teacher && !whole ? buf([R, V], 'teacher') : null;
  const dl = grad ? buf([R, V], 'dlogits') : null, dk = grad && o.teacher ? buf([R, V], 'dkl') : null;
  const dh = grad && h.requiresGrad && !whole ? buf([T, dim], 'dh') : null, dhc = dh ? buf([R, dim], 'dhc') : null;
  /** Rows r0 .. r0+n−1 of src: src itself when whole, else copied into the chunk buffer. */
  const rowsOf = (src: Tensor, chunk: Tensor | null, r0: number, n: number) => {
    if (!chunk) return src;
    gpu.copyRows(src, r0, chunk.rows(n));
    return chunk.rows(n);
  };
  for (let r0 = 0; r0 < T; r0 += R) {
    const n = Math.min(R, T - r0);
    const [ln, cn] = [logits, ce].map((b) => b.rows(n));
    const hn = rowsOf(h.value, hc, r0, n), tn = rowsOf(o.targets, tc, r0, n);
    const pn = o.teacher ? rowsOf(o.teacher.logits, pc, r0, n) : null;
    matmul(hn, head.value, { transB: true, out: ln });
    if (!dl) {
      crossEntropy(ln, tn, { out: cn });
      if (pn) klDivergence(pn, ln, { out: kl!.rows(n) });
    } else {
      const dln = dl.rows(n);
      crossEntropyBackward(ln, tn, { scale: o.ceScale, loss: cn, dlogits: dln });
      if (pn) {
        klDivergenceBackward(pn, ln, { scale: o.teacher!.klScale, loss: kl!.rows(n), dq: dk!.rows(n) });
        addKernel(dln, dk!.rows(n), 'inplace');
      }
      if (whole) t.grads([h], ([d], accumulate) => matmul(dln, head.value, { out: d, accumulate }), true);
      else if (dh && dhc) {
        matmul(dln, head.value, { out: dhc.rows(n) });
        gpu.copy(dhc.rows(n), dh, r0 * dim);
      }
      t.grads([head], ([dW], accumulate) => matmul(dln, hn, { transA: true, out: dW, accumulate }), true);
    }
    gpu.copy(cn, o.out.ce, o.out.offset + r0);
    if (kl) gpu.copy(kl.rows(n), o.out.kl!, o.out.offset + r0);
  }
  if (dh) t.grads([h], ([d], acc) => (acc ? addKernel(d, dh, 'inplace') : gpu.copy(dh, d)), true);
  for (const b of [hc, logits, tc, ce, kl, pc, dl, dk, dh, dhc]) b?.release();
}

/** A row of T ones [1, T] (bias gradients are its product with dy), uploaded once per device and length. */
const onesCache = new WeakMap<Gpu, Map<number, Tensor>>();
function ones(gpu: Gpu, T: number): Tensor {
  let byT = onesCache.get(gpu);
  if (!byT) onesCache.set(gpu, (byT = new Map()));
  let v = byT.get(T);
  if (!v) byT.set(T, (v = gpu.upload(new Float32Array(T).fill(1), [1, T], 'ones')));
  return v;
}
