// Checks of the training MoE block (moe.ts) and of MoE layers inside whole-model training (llama-train.ts):
//   block:       the tape op alone on random inputs, its output and L_aux against the float64 reference
//                (moe.ref.ts), and its gradients of Σ g·y + s·α·L_aux (g a random upstream gradient) with
//                respect to x, Wr, Wg, Wu and Wd against central differences of that reference;
//   whole model: a 2-layer model whose layer 1 is a MoE layer, every trainable parameter's gradient against
//                float64 differences of the objective, as train.check.ts does for dense models (weights
//                multiples of 2^-12, so the perturbed weights are exact f32 values), LoRA per expert on the
//                routed experts included, and an attention MoE (attention-moe.ts) in the same layer;
//   identity:    all experts active, zero router (p = 1/E) and Wd scaled by E, experts being a contiguous
//                split of the dense FFN (LaDiMo §4.1): Σ_e (1/E)·E·expert_e = the dense FFN, so the MoE model's
//                logits equal the dense model's.
// Top-k selection is piecewise constant: random routers are redrawn until every token's p_(k) − p_(k+1) is
// at least MARGIN, and every difference evaluation must keep the selection it started from (else the case
// fails with 'selection flips').
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { CheckCase, CheckResult } from '../ops/check.ts';
import { TOL, refusals, relL2 } from '../ops/check.ts';
import type { Rng } from '../data/rng.ts';
import type { ModelConfig } from '../model/config.ts';
import { LlamaModel } from '../model/llama.ts';
import { llamaForwardRef } from '../model/llama.ref.ts';
import { base, randomModel } from '../model/llama.check.ts';
import { crossEntropyRef } from '../ops/softmax.ref.ts';
import { dot, fdError } from '../ops/gradcheck.ts';
import { splitFfnRef } from '../ops/moe-train.ref.ts';
import { gateNormals, moe, type MoeRouting } from './moe.ts';
import type { AttentionRouting } from './attention-moe.ts';
import type { LoraOptions } from './lora.ts';
import { moeBlockRef, moeModelForwardRef, selectionRef, type MoeBlockRef } from './moe.ref.ts';
import { attentionRouterName, moeParamNames, type MoeLayerWeights } from './params.ts';
import { releaseTrainModel, sequenceLogits, sequenceLoss, trainModel, type TrainMoeLayer } from './llama-train.ts';
import { Param, Tape, Var } from './tape.ts';
import { PROBES, difference, quantize } from './train.check.ts';

const FAMILY = 'train moe';
/**
 * Smallest gap p_(k) − p_(k+1) the random routers are drawn to keep: the whole-model differences step
 * weights by 2^-10 (p moves by ~1e-3 at most), the block's by 1e-5 (fdError's).
 */
const MARGIN = 0.02;
const BLOCK_MARGIN = 1e-3;
/** Routers drawn before giving up on the margin. */
const DRAWS = 500;

function routingLabel(r: MoeRouting, E: number): string {
  const k = r.topK === E ? `all ${E} experts` : `top-${r.topK} of ${E}`;
  const tau = r.temperature !== undefined ? `, softmax temperature ${r.temperature}` : '';
  return `${k}${r.normTopK ? ' renorm' : ''}${tau}${r.auxCoef ? `, L_aux α ${r.auxCoef}` : ''}${r.noise ? `, noisy gate ε ${r.noise.epsilon}` : ''}`;
}

// ------------------------------------------------------------------------------------------------ block

interface BlockCase {
  T: number;
  H: number;
  E: number;
  I: number;
  routing: MoeRouting;
  /** the balance loss's scale (auxScale) */
  auxScale?: number;
  /** constant per-expert down_proj biases (DIVE's FLAP compensation) */
  bias?: boolean;
}

const blockCases: BlockCase[] = [
  { T: 9, H: 16, E: 4, I: 12, routing: { topK: 2 } },
  { T: 37, H: 24, E: 8, I: 20, routing: { topK: 2, normTopK: true, auxCoef: 0.5 }, auxScale: 0.25 },
  { T: 13, H: 20, E: 4, I: 10, routing: { topK: 4, temperature: 0.5 } },
  { T: 70, H: 33, E: 8, I: 17, routing: { topK: 1, auxCoef: 0.3 } },
  { T: 11, H: 16, E: 4, I: 12, routing: { topK: 2, normTopK: true }, bias: true },
  { T: 13, H: 20, E: 4, I: 10, routing: { topK: 2, normTopK: true, noise: { epsilon: 0.01, seed: 5 } } },
  { T: 9, H: 16, E: 4, I: 12, routing: { topK: 4, temperature: 0.5, noise: { epsilon: 0.3, seed: 6 } } },
];

/** The sequence key of the block checks' noisy gates. */
const KEY = 17;

const blockChecks: CheckCase[] = blockCases.map((k) => ({
  family: FAMILY,
  name: `block: y, L_aux and ∂(g·y + s·α·L_aux)/∂{x, Wr, Wn, Wg, Wu, Wd} vs float64 differences, T${k.T} H${k.H} I${k.I} ${routingLabel(k.routing, k.E)}${k.bias ? ', expert biases' : ''}`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const { T, H, E, I, routing } = k;
    const s = k.auxScale ?? 1;
    const x = rng.normals(T * H);
    const W: MoeBlockRef & { Wr: Float32Array } = {
      Wr: rng.normals(E * H, 2 / Math.sqrt(H)),
      Wg: rng.normals(E * I * H, 1 / Math.sqrt(H)),
      Wu: rng.normals(E * I * H, 1 / Math.sqrt(H)),
      Wd: rng.normals(E * H * I, 1 / Math.sqrt(I)),
      bias: k.bias ? rng.normals(E * H) : undefined,
      noise: routing.noise && { Wn: rng.normals(E * H, 1 / Math.sqrt(H)), normals: gateNormals(routing.noise.seed, KEY, T, E) },
    };
    for (let i = 0; moeBlockRef(x, W, T, H, routing).margin < BLOCK_MARGIN; i++) {
      if (i === DRAWS) throw new Error(`no router in ${DRAWS} draws keeps a selection margin of ${BLOCK_MARGIN}`);
      W.Wr = rng.normals(E * H, 2 / Math.sqrt(H));
    }
    const g = rng.normals(T * H);
    const ref = moeBlockRef(x, W, T, H, routing);
    const selection = selectionRef(ref.routing, T).join(';');
    let flips = 0;
    const objective = (over: Partial<MoeBlockRef>, xv: ArrayLike<number> = x) => {
      const r = moeBlockRef(xv, { ...W, ...over }, T, H, routing);
      if (selectionRef(r.routing, T).join(';') !== selection) flips++;
      return dot(g, r.y) + s * (routing.auxCoef ?? 0) * r.aux;
    };

    const t = new Tape(gpu, true);
    const xv = new Var(gpu.upload(x, [T, H], 'x'), true, null, null);
    const P = {
      router: new Param('router', gpu.upload(W.Wr, [E, H], 'router'), true),
      gate: new Param('gate_proj', gpu.upload(Float32Array.from(W.Wg), [E, I, H], 'gate_proj'), true),
      up: new Param('up_proj', gpu.upload(Float32Array.from(W.Wu), [E, I, H], 'up_proj'), true),
      down: new Param('down_proj', gpu.upload(Float32Array.from(W.Wd), [E, H, I], 'down_proj'), true),
      ...(W.noise && { noise: new Param('noise', gpu.upload(Float32Array.from(W.noise.Wn), [E, H], 'weight_noise'), true) }),
    };
    const auxOut = gpu.tensor([1], 'f32', 'L_aux');
    const seed = gpu.upload(g, [T, H], 'g');
    const yCopy = gpu.tensor([T, H], 'f32', 'y');
    const bias = W.bias && gpu.upload(Float32Array.from(W.bias), [E, H], 'bias');
    try {
      const noise = P.noise && t.param(P.noise);
      const y = moe(t, xv, { router: t.param(P.router), gate: t.param(P.gate), up: t.param(P.up), down: t.param(P.down), bias, noise }, {
        ...routing, auxScale: s, auxOut: { loss: auxOut, offset: 0 }, noiseKey: KEY,
      });
      gpu.copy(y.value, yCopy);
      t.backward(y, seed);
      const read = async (v: Tensor | null) => (await v!.read()) as Float32Array;
      const outputs: Record<string, number> = {
        y: relL2(await read(yCopy), ref.y),
        dx: fdError((v) => objective({}, v), x, await read(xv.grad), rng),
        dWr: fdError((v) => objective({ Wr: v }), W.Wr, await read(P.router.grad), rng),
        dWg: fdError((v) => objective({ Wg: v }), W.Wg, await read(P.gate.grad), rng),
        dWu: fdError((v) => objective({ Wu: v }), W.Wu, await read(P.up.grad), rng),
        dWd: fdError((v) => objective({ Wd: v }), W.Wd, await read(P.down.grad), rng),
      };
      if (W.noise) outputs.dWn = fdError((v) => objective({ noise: { ...W.noise!, Wn: v } }), W.noise.Wn, await read(P.noise!.grad), rng);
      if (routing.auxCoef) outputs.L_aux = relL2(await read(auxOut), [ref.aux]);
      outputs['selection flips'] = flips;
      return { err: Math.max(...Object.values(outputs).map((e) => (Number.isNaN(e) ? Infinity : e))), outputs };
    } finally {
      t.release();
      xv.value.release();
      xv.grad?.release();
      for (const p of Object.values(P)) p.release();
      for (const b of [auxOut, seed, yCopy, bias]) b?.release();
    }
  },
}));

// ------------------------------------------------------------------------------------------ whole model

interface ModelCase {
  label: string;
  routing: MoeRouting;
  E: number;
  I: number;
  /** shared expert width (absent: none) */
  S?: number;
  lengths: number[];
  recompute: boolean;
  /** train.only globs (absent: every parameter) */
  only?: string[];
  /** LoRA adapters (lora.ts on linear layers, moe.ts per expert on the routed experts), B drawn ≠ 0 */
  lora?: LoraOptions;
  /** constant per-expert down_proj biases (DIVE's FLAP compensation) */
  bias?: boolean;
  /** the layer's attention an attention MoE too (over base's KV head groups) */
  attention?: AttentionRouting;
}

const MOE_LAYER = 1;

const modelCases: ModelCase[] = [
  { label: 'every parameter', routing: { topK: 2 }, E: 4, I: 12, lengths: [11], recompute: false },
  {
    label: 'shared expert (S 8), 2 sequences accumulated, recompute, every parameter',
    routing: { topK: 2, normTopK: true, auxCoef: 0.1 }, E: 4, I: 12, S: 8, lengths: [10, 7], recompute: true,
  },
  { label: 'every parameter', routing: { topK: 4, temperature: 0.5 }, E: 4, I: 12, lengths: [11], recompute: false },
  { label: "train.only '*.mlp.gate.weight' (routers only)", routing: { topK: 2, auxCoef: 0.1 }, E: 4, I: 12, lengths: [9], recompute: false, only: ['*.mlp.gate.weight'] },
  {
    label: 'LoRA r 4 (α 8) per expert on experts.gate_proj, experts.down_proj and on q_proj, B ≠ 0; adapters and routers train',
    routing: { topK: 2 }, E: 4, I: 12, lengths: [9], recompute: false,
    lora: { rank: 4, alpha: 8, targets: ['experts.gate_proj', 'experts.down_proj', 'q_proj'], seed: 3, field: 'lora' },
    only: ['*lora_*', '*.mlp.gate.weight'],
  },
  // DIVE's two retraining stages (src/methods/dive/retrain.ts) on experts with FLAP biases
  { label: "expert biases, train.only '*.mlp.gate.weight' (DIVE stage 1)", routing: { topK: 4, temperature: 0.5 }, E: 4, I: 12, bias: true, lengths: [9], recompute: false, only: ['*.mlp.gate.weight'] },
  {
    label: 'expert biases, LoRA r 4 (α 8) on every expert projection, adapters and norms train (DIVE stage 2)',
    routing: { topK: 2, normTopK: true }, E: 4, I: 12, bias: true, lengths: [9], recompute: false,
    lora: { rank: 4, alpha: 8, targets: ['experts.gate_proj', 'experts.up_proj', 'experts.down_proj'], seed: 3, field: 'lora' },
    only: ['*lora_*', '*norm.weight'],
  },
  // LLaMA-MoE v2: attention and MLP MoE in one layer, each router with its own balance loss
  {
    label: 'attention MoE top-1 of 2 head groups (s 2, L_aux α 0.2) in the same layer, 2 sequences accumulated, recompute, every parameter',
    routing: { topK: 2, auxCoef: 0.1 }, E: 4, I: 12, lengths: [9, 6], recompute: true, attention: { topK: 1, scale: 2, auxCoef: 0.2 },
  },
];

/**
 * The weights the reference sees: each adapted module's W + s·B·A, per expert for stacked ones (W
 * [E, out, in], A [E, r, in], B [E, out, r]; 2-D: E = 1). W, A and B are multiples of 2^-12, 2^-8 and 2^-8
 * and s a power of two, so the sum is an exact f32 value (asserted): the reference sees the GPU's model.
 */
function merged(host: Map<string, Float32Array>, adapters: Map<string, { scale: number; r: number; out: number; inp: number }>): Map<string, Float32Array> {
  const w = new Map(host);
  for (const [m, { scale, r, out, inp }] of adapters) {
    const W = host.get(`${m}.weight`)!, A = host.get(`${m}.lora_A.weight`)!, B = host.get(`${m}.lora_B.weight`)!;
    const M = new Float32Array(W.length);
    for (let e = 0; e < W.length / (out * inp); e++) {
      for (let i = 0; i < out; i++) {
        for (let j = 0; j < inp; j++) {
          let v = W[(e * out + i) * inp + j];
          for (let k = 0; k < r; k++) v += scale * B[(e * out + i) * r + k] * A[(e * r + k) * inp + j];
          if (Math.fround(v) !== v) throw new Error(`merged ${m}: W + s·B·A is not an f32 value`);
          M[(e * out + i) * inp + j] = v;
        }
      }
    }
    w.set(`${m}.weight`, M);
  }
  return w;
}

/** Host MoE weights of layer MOE_LAYER under their parameter names, multiples of 2^-12. */
function moeHostWeights(c: ModelConfig, k: ModelCase, rng: Rng): Map<string, Float32Array> {
  const H = c.dim;
  const n = moeParamNames(MOE_LAYER);
  const q = (a: Float32Array) => quantize(a, 12);
  const w = new Map<string, Float32Array>([
    [n.router, q(rng.normals(k.E * H, 2 / Math.sqrt(H)))],
    [n.gate_proj, q(rng.normals(k.E * k.I * H, 1 / Math.sqrt(H)))],
    [n.up_proj, q(rng.normals(k.E * k.I * H, 1 / Math.sqrt(H)))],
    [n.down_proj, q(rng.normals(k.E * H * k.I, 1 / Math.sqrt(k.I)))],
  ]);
  if (k.bias) w.set(n.bias, q(rng.normals(k.E * H, 0.5)));
  if (k.attention) w.set(attentionRouterName(MOE_LAYER), q(rng.normals(c.nKvHeads * H, 2 / Math.sqrt(H))));
  if (k.S) {
    w.set(`${n.shared.gate_proj}.weight`, q(rng.normals(k.S * H, 1 / Math.sqrt(H))));
    w.set(`${n.shared.up_proj}.weight`, q(rng.normals(k.S * H, 1 / Math.sqrt(H))));
    w.set(`${n.shared.down_proj}.weight`, q(rng.normals(H * k.S, 1 / Math.sqrt(k.S))));
  }
  return w;
}

function uploadMoeLayer(gpu: Gpu, w: Map<string, Float32Array>, c: ModelConfig, E: number, I: number, S?: number, bias?: boolean): MoeLayerWeights {
  const H = c.dim;
  const n = moeParamNames(MOE_LAYER);
  const up = (name: string, shape: number[]) => gpu.upload(w.get(name)!, shape, name);
  return {
    router: up(n.router, [E, H]),
    gate_proj: up(n.gate_proj, [E, I, H]),
    up_proj: up(n.up_proj, [E, I, H]),
    down_proj: up(n.down_proj, [E, H, I]),
    shared: S ? {
      gate_proj: up(`${n.shared.gate_proj}.weight`, [S, H]),
      up_proj: up(`${n.shared.up_proj}.weight`, [S, H]),
      down_proj: up(`${n.shared.down_proj}.weight`, [H, S]),
    } : undefined,
    bias: bias ? up(n.bias, [E, H]) : undefined,
  };
}

function releaseMoeLayer(w: MoeLayerWeights): void {
  for (const t of [w.router, w.gate_proj, w.up_proj, w.down_proj, w.bias, ...(w.shared ? Object.values(w.shared) : [])]) t?.release();
}

async function modelCase(gpu: Gpu, rng: Rng, k: ModelCase): Promise<CheckResult> {
  const c = base;
  const V = c.vocabSize;
  const { index, weights } = randomModel(c, rng);
  for (const [n, w] of weights) weights.set(n, quantize(w, 12));
  const seqs = k.lengths.map((T) => ({ ids: Array.from({ length: T }, () => rng.int(V)), targets: Array.from({ length: T }, () => rng.int(V)) }));
  const routingMap = new Map([[MOE_LAYER, k.routing]]);
  const attnMap = new Map(k.attention ? [[MOE_LAYER, k.attention]] : []);
  const attnName = attentionRouterName(MOE_LAYER);

  // the host parameters: the dense model's but layer 1's mlp, the MoE layer's and the adapters (random B)
  const host = new Map([...weights].filter(([n]) => !n.startsWith(`model.layers.${MOE_LAYER}.mlp.`)));
  for (const [n, w] of moeHostWeights(c, k, rng)) host.set(n, w);
  const model = await LlamaModel.load(gpu, index, { chunk: 1, seqLen: 1 });
  const moeW = uploadMoeLayer(gpu, host, c, k.E, k.I, k.S, k.bias);
  const layers = new Map<number, TrainMoeLayer>([[MOE_LAYER, { weights: moeW, routing: k.routing }]]);
  const attnRouter = k.attention && gpu.upload(host.get(attnName)!, [c.nKvHeads, c.dim], attnName);
  const attention = new Map(attnRouter ? [[MOE_LAYER, { router: attnRouter, routing: k.attention! }]] : []);
  const m = trainModel(model, { recompute: k.recompute, moe: layers, attention, lora: k.lora, freeze: { only: k.only ?? [], freeze: [], fields: { only: 'only', freeze: 'freeze' } } });
  const held: Tensor[] = [];
  try {
    const adapters = new Map([...m.lora].map(([mod, a]) => [mod, { scale: a.scale, r: a.A.value.shape.at(-2)!, out: a.B.value.shape.at(-2)!, inp: a.A.value.shape.at(-1)! }]));
    for (const a of m.lora.values()) {
      for (const p of [a.A, a.B]) {
        const v = quantize(rng.normals(p.value.size, 0.2), 8);
        gpu.write(p.value, v);
        host.set(p.name, v);
      }
    }
    // the routers redrawn until every token's selections have a clear margin
    const forwardRef = (ids: number[]) => moeModelForwardRef(c, merged(host, adapters), routingMap, ids, attnMap);
    const routed = (r: ReturnType<typeof forwardRef>) => [r.layers.get(MOE_LAYER)!, ...r.attnLayers.values()];
    const margin = () => Math.min(...seqs.flatMap((s) => routed(forwardRef(s.ids)).map((L) => L.margin)));
    for (let i = 0; margin() < MARGIN; i++) {
      if (i === DRAWS) throw new Error(`no router in ${DRAWS} draws keeps a selection margin of ${MARGIN}`);
      const redraw = (name: string, rows: number, t: Tensor) => {
        host.set(name, quantize(rng.normals(rows * c.dim, 2 / Math.sqrt(c.dim)), 12));
        gpu.write(t, host.get(name)!);
      };
      redraw(moeParamNames(MOE_LAYER).router, k.E, moeW.router);
      if (attnRouter) redraw(attnName, c.nKvHeads, attnRouter);
    }

    const N = k.lengths.reduce((a, b) => a + b, 0);
    const ceScale = 1 / N, auxScale = 1 / seqs.length;
    const ce = gpu.tensor([N], 'f32', 'ce');
    held.push(ce);
    for (const p of m.params.trainable()) p.zeroGrad();
    let offset = 0;
    const auxRows: Tensor[] = [];
    const attnAuxRows: Tensor[] = [];
    for (const s of seqs) {
      const T = s.ids.length;
      const ids = gpu.upload(Uint32Array.from(s.ids), [T]), targets = gpu.upload(Uint32Array.from(s.targets), [T]);
      const auxSeq = gpu.tensor([c.nLayers], 'f32', 'aux.seq'), attnAuxSeq = gpu.tensor([c.nLayers], 'f32', 'attn_aux.seq');
      held.push(ids, targets, auxSeq, attnAuxSeq);
      auxRows.push(auxSeq);
      attnAuxRows.push(attnAuxSeq);
      sequenceLoss(m, { ids, targets }, { train: true, ceScale, klScale: 0, auxScale, out: { ce, aux: auxSeq, attnAux: attnAuxSeq, offset } });
      offset += T;
    }

    // float64: the objective Σ_seq (ceScale·Σ_t CE_t + auxScale·Σ_routers α·L_aux), each sequence's selections kept
    const selections = (r: ReturnType<typeof forwardRef>) => routed(r).map((L) => L.selection.join(';')).join('|');
    const base0 = seqs.map((s) => selections(forwardRef(s.ids)));
    let flips = 0;
    const refObjective = () => {
      let loss = 0;
      const ceRows: number[] = [], auxes: number[] = [], attnAuxes: number[] = [];
      const w = merged(host, adapters);
      seqs.forEach((s, i) => {
        const r = moeModelForwardRef(c, w, routingMap, s.ids, attnMap);
        if (selections(r) !== base0[i]) flips++;
        crossEntropyRef(r.logits, s.targets, s.ids.length, V).forEach((v) => {
          loss += ceScale * v;
          ceRows.push(v);
        });
        const L = r.layers.get(MOE_LAYER)!;
        loss += auxScale * (k.routing.auxCoef ?? 0) * L.aux;
        auxes.push(L.aux);
        const A = r.attnLayers.get(MOE_LAYER);
        if (A) {
          loss += auxScale * (k.attention!.auxCoef ?? 0) * A.aux;
          attnAuxes.push(A.aux);
        }
      });
      return { loss, ce: ceRows, aux: auxes, attnAux: attnAuxes };
    };
    const ref = refObjective();
    const outputs: Record<string, number> = { 'CE per token': relL2(await ce.read(), ref.ce) };
    const layerAux = (rows: Tensor[]) => Promise.all(rows.map(async (a) => (await a.read())[MOE_LAYER]));
    if (k.routing.auxCoef) outputs['L_aux per sequence'] = relL2(await layerAux(auxRows), ref.aux);
    if (k.attention?.auxCoef) outputs['attention L_aux per sequence'] = relL2(await layerAux(attnAuxRows), ref.attnAux);
    for (const p of m.params.trainable()) {
      if (!p.grad) throw new Error(`${p.name}: trainable but no gradient was written`);
      const g = (await p.grad.read()) as Float32Array;
      const x = host.get(p.name)!;
      const idx = x.length <= PROBES ? [...x.keys()] : Array.from({ length: PROBES }, () => rng.int(x.length));
      outputs[p.name] = relL2(idx.map((i) => g[i]), idx.map((i) => difference(x, i, () => refObjective().loss)));
    }
    outputs['frozen parameters with a gradient'] = m.params.all().filter((p) => !p.trainable && p.grad).length;
    outputs['selection flips'] = flips;
    return { err: Math.max(...Object.values(outputs).map((e) => (Number.isNaN(e) ? Infinity : e))), outputs };
  } finally {
    releaseTrainModel(m);
    model.release();
    releaseMoeLayer(moeW);
    attnRouter?.release();
    for (const t of held) t.release();
  }
}

const modelChecks: CheckCase[] = modelCases.map((k) => ({
  family: FAMILY,
  name: `whole-model gradients vs float64 differences, layer ${MOE_LAYER} of 2 MoE ${routingLabel(k.routing, k.E)}: ${k.label}`,
  tol: TOL.grad,
  run: (gpu, rng) => modelCase(gpu, rng, k),
}));

// --------------------------------------------------------------------------------------------- identity

const E_SPLIT = 4;

const identity: CheckCase = {
  family: FAMILY,
  name: `identity: all ${E_SPLIT} experts, zero router, Wd·${E_SPLIT}, experts a split of the dense FFN → the dense model's logits`,
  tol: TOL.gemm,
  async run(gpu, rng) {
    const c = base;
    const H = c.dim, Id = c.hiddenDim, I = Id / E_SPLIT;
    const { index, weights } = randomModel(c, rng);
    const ids = Array.from({ length: 12 }, () => rng.int(c.vocabSize));
    const mlp = (n: string) => weights.get(`model.layers.${MOE_LAYER}.mlp.${n}.weight`)!;
    const split = splitFfnRef(mlp('gate_proj'), mlp('up_proj'), mlp('down_proj'), H, Id, E_SPLIT);
    const model = await LlamaModel.load(gpu, index, { chunk: 1, seqLen: 1 });
    const moeW: MoeLayerWeights = {
      router: gpu.upload(new Float32Array(E_SPLIT * H), [E_SPLIT, H], 'router'),
      gate_proj: gpu.upload(split.Wg, [E_SPLIT, I, H], 'gate_proj'),
      up_proj: gpu.upload(split.Wu, [E_SPLIT, I, H], 'up_proj'),
      // p = 1/E per expert: E·Wd_e makes Σ_e p·expert_e the dense sum (×4 and ×1/4 are exact in f32)
      down_proj: gpu.upload(split.Wd.map((v) => v * E_SPLIT), [E_SPLIT, H, I], 'down_proj'),
    };
    const freeze = { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } };
    const dense = trainModel(model, { recompute: false, freeze });
    const sparse = trainModel(model, { recompute: false, freeze, moe: new Map([[MOE_LAYER, { weights: moeW, routing: { topK: E_SPLIT } }]]) });
    const idsT = gpu.upload(Uint32Array.from(ids), [ids.length]);
    const [a, b] = [gpu.tensor([ids.length, c.vocabSize]), gpu.tensor([ids.length, c.vocabSize])];
    try {
      sequenceLogits(dense, idsT, a);
      sequenceLogits(sparse, idsT, b);
      const want = llamaForwardRef(c, weights, ids);
      const [la, lb] = [(await a.read()) as Float32Array, (await b.read()) as Float32Array];
      const outputs = { 'MoE vs dense (GPU)': relL2(lb, la), 'MoE vs dense float64': relL2(lb, want), 'dense vs dense float64': relL2(la, want) };
      return { err: Math.max(...Object.values(outputs)), outputs };
    } finally {
      releaseTrainModel(dense);
      releaseTrainModel(sparse);
      model.release();
      releaseMoeLayer(moeW);
      for (const t of [idsT, a, b]) t.release();
    }
  },
};

// ------------------------------------------------------------------------------------------------ errors

/** A bad MoE layer refused by trainModel with a message naming the layer or field and what was expected. */
const errors: CheckCase = {
  family: FAMILY,
  name: 'trainModel refuses bad MoE layers, naming the layer, the field and what it expected',
  tol: 0,
  async run(gpu, rng) {
    const c = base;
    const { index } = randomModel(c, rng);
    const model = await LlamaModel.load(gpu, index, { chunk: 1, seqLen: 1 });
    const [E, I, H] = [4, 8, c.dim];
    const w: MoeLayerWeights = {
      router: gpu.tensor([E, H], 'f32', 'router'), gate_proj: gpu.tensor([E, I, H], 'f32', 'gate_proj'),
      up_proj: gpu.tensor([E, I, H], 'f32', 'up_proj'), down_proj: gpu.tensor([E, H, I], 'f32', 'down_proj'),
    };
    const freeze = { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } };
    const cases: [string, () => unknown, string[]][] = [
      ['topK 5 of 4 experts', () => trainModel(model, { recompute: false, freeze, moe: new Map([[1, { weights: w, routing: { topK: 5 } }]]) }), ['model.layers.1.mlp', 'topK', '[1, 4]']],
      ['temperature 0', () => trainModel(model, { recompute: false, freeze, moe: new Map([[1, { weights: w, routing: { topK: 2, temperature: 0 } }]]) }), ['model.layers.1.mlp', 'temperature', '> 0']],
      ['layer 2 of 2', () => trainModel(model, { recompute: false, freeze, moe: new Map([[2, { weights: w, routing: { topK: 2 } }]]) }), ['MoE layer 2', '0..1']],
      [
        "LoRA target 'experts.gate' (a typo)",
        () => trainModel(model, { recompute: false, freeze, moe: new Map([[1, { weights: w, routing: { topK: 2 } }]]), lora: { rank: 2, alpha: 4, targets: ['experts.gate'], seed: 1, field: 'lora.targets' } }),
        ['lora.targets', "'experts.gate'"],
      ],
    ];
    let outputs: Record<string, number>;
    try {
      outputs = refusals(cases);
    } finally {
      model.release();
      releaseMoeLayer(w);
    }
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const trainMoeChecks: CheckCase[] = [...blockChecks, ...modelChecks, identity, errors];
