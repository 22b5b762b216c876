// The Mixture-of-Depths ensemble head (Luo & Specia 2024, "Tuning Language Models by Mixture-of-Depths
// Ensemble", arXiv:2410.13077) on the training tape:
//   §2.2  the final layer and the k late layers before it each predict the next token through the shared
//         LM head, logits_i = lm_head(N_i(h_i)); a router g(x) = softmax(x·W_g) mixes the predictions,
//         P = Σ_i g_i(x)·softmax(logits_i) (or softmax(Σ_i g_i·logits_i), mix 'logit')
//   §2.3  each late layer gets its own RMSNorm N_i, initialised from the final norm, and the loss adds
//         λ·Σ_i KL(p_final ‖ p_i) with the final layer's distribution as a stop-gradient teacher.
// The router's input x is the final layer's normalised state N(h_L), the vector the LM head reads: it is
// the model's most processed view of the context, costs nothing extra at inference, and is on the scale
// the norm fixes, so one W_g fits every position. W_g acts on [x; 1] (a bias row), so the router can start
// from a chosen share for the final layer instead of an even split. Member 0 is always the final layer.
// Chunked over rows like lmHeadLoss (train/ops.ts): no [T, vocab] array exists, at most
// K·chunkRows·vocab logits at a time.
import type { Tensor } from '../../gpu/tensor.ts';
import { matmul } from '../../ops/matmul.ts';
import { add as addKernel } from '../../ops/elementwise.ts';
import { softmax } from '../../ops/softmax.ts';
import { MOD_MAX_MEMBERS, modMixLogProbs, modMixLoss, modMixLossBackward, type MixSpace } from '../../ops/mod-mix.ts';
import { decoderLayer, type Sequence, type SequenceLossOptions, type TrainModel } from '../../train/llama-train.ts';
import { embed, linear, rmsNorm } from '../../train/ops.ts';
import type { Param } from '../../train/tape.ts';
import { Tape, type Var } from '../../train/tape.ts';

export interface ModHead {
  /** the late layers before the final one whose residual stream joins the ensemble, ascending */
  layers: number[];
  /** N_i, one RMSNorm weight per late layer (mod.norm.<layer>.weight) */
  norms: Param[];
  /** W_g [K, dim] and its bias row [K] (mod.router.weight / .bias); null when k = 0 (g ≡ 1) */
  router: { weight: Param; bias: Param } | null;
  mix: MixSpace;
  /** rows of K·vocab logits the loss computes at a time */
  chunkRows: number;
}

/** K = k + 1 members: the final layer and the k late ones. */
export function members(h: ModHead): number {
  return h.layers.length + 1;
}

export interface ModHeadOptions {
  /** late layers before the final one, k (mod.k) */
  k: number;
  mix: MixSpace;
  /** the router's initial weight on the final layer; the late layers share the rest equally */
  initFinal: number;
}

/**
 * Adds the MoD head's parameters to m.params (trainable): N_i copied from model.norm, W_g zero and a bias
 * that gives the final layer `initFinal` of the weight at every position.
 */
export function addModHead(m: TrainModel, o: ModHeadOptions): ModHead {
  const c = m.config;
  if (!Number.isInteger(o.k) || o.k < 0 || o.k > c.nLayers - 1) throw new Error(`mod.k: ${o.k} late layers; the model has ${c.nLayers} layers, so k is an integer in [0, ${c.nLayers - 1}]`);
  if (o.k + 1 > MOD_MAX_MEMBERS) throw new Error(`mod.k: ${o.k} late layers; the ensemble kernel mixes at most ${MOD_MAX_MEMBERS} members`);
  if (!(o.initFinal > 0 && o.initFinal < 1) && o.k > 0) throw new Error(`mod.initFinal: must lie in (0, 1), got ${o.initFinal}`);
  const final = m.params.get('model.norm.weight').value;
  const gpu = final.gpu;
  const layers = Array.from({ length: o.k }, (_, i) => c.nLayers - 1 - o.k + i);
  const norms = layers.map((l) => {
    const w = gpu.tensor([c.dim], 'f32', `mod.norm.${l}`);
    gpu.copy(final, w);
    return m.params.add(`mod.norm.${l}.weight`, w);
  });
  let router: ModHead['router'] = null;
  if (o.k > 0) {
    const K = o.k + 1;
    // softmax(b) = (initFinal, rest/k, …): b_0 − b_i = log(initFinal·k / (1 − initFinal))
    const b = new Float32Array(K);
    b[0] = Math.log((o.initFinal * o.k) / (1 - o.initFinal));
    router = {
      weight: m.params.add('mod.router.weight', gpu.upload(new Float32Array(K * c.dim), [K, c.dim], 'mod.router.weight')),
      bias: m.params.add('mod.router.bias', gpu.upload(b, [K], 'mod.router.bias')),
    };
  }
  const chunkRows = Math.max(1, Math.floor(2 ** 22 / ((o.k + 1) * c.vocabSize)));
  return { layers, norms, router, mix: o.mix, chunkRows };
}

export interface ModLossOptions extends SequenceLossOptions {
  /** also write the router weights g [T, K] of the sequence */
  gates?: Tensor;
  /** also write the ensemble's log-probabilities [T, vocab] */
  logProbs?: Tensor;
}

/**
 * One sequence through the model and the MoD head: writes the mixed prediction's per-token cross-entropy
 * (and Σ_i KL(p_final ‖ p_i)) and, when training, adds ceScale·Σ CE + klScale·Σ KL's gradients into the
 * trainable parameters. The same signature as sequenceLoss, so the trainer takes it as its objective.
 */
export function modSequenceLoss(m: TrainModel, head: ModHead, s: Sequence, o: ModLossOptions): void {
  const t = new Tape(m.params.get('model.embed_tokens.weight').value.gpu, o.train);
  try {
    const c = m.config;
    const P = (name: string) => t.param(m.params.get(name));
    // the residual stream after each layer; the late ones are kept for their own predictions
    let x = embed(t, P('model.embed_tokens.weight'), s.ids);
    const late: Var[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      x = decoderLayer(t, m, l, x);
      if (head.layers.includes(l)) late.push(x);
    }
    const final = rmsNorm(t, x, P('model.norm.weight'), c.normEps);
    const hs = [final, ...late.map((h, i) => rmsNorm(t, h, t.param(head.norms[i]), c.normEps))];
    const router = head.router && linear(t, final, { weight: t.param(head.router.weight), bias: t.param(head.router.bias) });
    modHeadLoss(t, hs, router, P(c.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), s.targets, head, o);
    if (o.train) t.backward();
  } finally {
    t.release();
  }
}

/**
 * The ensemble's loss on the tape: members' normalised states hs (K × [T, dim], hs[0] the final one),
 * router logits [T, K] (null: one member, g ≡ 1) and the shared head [vocab, dim].
 */
export function modHeadLoss(t: Tape, hs: Var[], router: Var | null, head: Var, targets: Tensor, h: Pick<ModHead, 'mix' | 'chunkRows'>, o: ModLossOptions): void {
  const K = hs.length;
  const [T, dim] = hs[0].shape;
  const V = head.shape[0];
  if (!router && K !== 1) throw new Error(`modHeadLoss: ${K} members need router logits`);
  const R = Math.min(h.chunkRows, T);
  const gpu = t.gpu;
  const buf = (shape: number[], label: string) => gpu.tensor(shape, 'f32', `modHeadLoss.${label}`);
  const grad = t.needs(head, ...hs, ...(router ? [router] : []));
  // one member: its router logit is 0 at every row, so g ≡ 1
  const one = router ? null : buf([T, 1], 'oneMember');
  if (one) gpu.write(one, new Float32Array(T));
  const A = router ? router.value : one!;
  const hc = buf([K * R, dim], 'h'), row = buf([R, dim], 'row'), logits = buf([K * R, V], 'logits');
  const ce = buf([T], 'ce'), kl = buf([T], 'kl');
  const dz = grad ? buf([K * R, V], 'dlogits') : null, dhc = grad ? buf([K * R, dim], 'dh') : null;
  const dA = grad ? buf([T, K], 'drouter') : null;
  const dh = grad ? hs.map((v) => (v.requiresGrad ? buf([T, dim], 'dhi') : null)) : [];
  const lp = o.logProbs ? buf([R, V], 'logprobs') : null;
  for (let r0 = 0; r0 < T; r0 += R) {
    const n = Math.min(R, T - r0);
    // the chunk's rows of every member, stacked [K, n, dim] → logits [K, n, V] in one GEMM
    hs.forEach((v, i) => {
      gpu.copyRows(v.value, r0, row.rows(n));
      gpu.copy(row.rows(n), hc, i * n * dim);
    });
    const hn = hc.rows(K * n);
    matmul(hn, head.value, { transB: true, out: logits.rows(K * n) });
    const args = { logits: logits.rows(K * n).view([K, n, V]), router: A, targets, mix: h.mix, row0: r0 };
    if (!dz || !dhc || !dA) modMixLoss(args, { ce, kl });
    else {
      const dzn = dz.rows(K * n);
      modMixLossBackward({ ...args, ceScale: o.ceScale, klScale: o.klScale }, { ce, kl, dLogits: dzn.view([K, n, V]), dRouter: dA });
      matmul(dzn, head.value, { out: dhc.rows(K * n) });
      dh.forEach((d, i) => {
        if (!d) return;
        gpu.copyRows(dhc, i * n, row.rows(n));
        gpu.copy(row.rows(n), d, r0 * dim);
      });
      t.grads([head], ([dW], accumulate) => matmul(dzn, hn, { transA: true, out: dW, accumulate }), true);
    }
    if (lp && o.logProbs) {
      modMixLogProbs(args, lp.rows(n));
      gpu.copy(lp.rows(n), o.logProbs, r0 * V);
    }
  }
  gpu.copy(ce, o.out.ce, o.out.offset);
  if (o.out.kl) gpu.copy(kl, o.out.kl, o.out.offset);
  if (o.gates) {
    if (router) softmax(router.value, { out: o.gates });
    else gpu.write(o.gates, new Float32Array(T).fill(1));
  }
  hs.forEach((v, i) => {
    const d = dh[i];
    if (d) t.grads([v], ([g], acc) => (acc ? addKernel(g, d, 'inplace') : gpu.copy(d, g)), true);
  });
  if (router?.requiresGrad && dA) t.grads([router], ([g], acc) => (acc ? addKernel(g, dA, 'inplace') : gpu.copy(dA, g)), true);
  for (const b of [hc, row, logits, ce, kl, dz, dhc, dA, lp, one, ...dh]) b?.release();
}
