// Checks of the attention MoE training op (attention-moe.ts):
//   block:    the tape op alone on random inputs, its output and L_aux against the float64 reference
//             (moe.ref.ts attentionMoeRef), and its gradients of Σ g·y + s·α·L_aux (g a random upstream
//             gradient) with respect to the router input h, the attention output and Wr against central
//             differences of that reference (top-k selection kept, as moe.check.ts keeps the MLP's);
//   identity: every group active, zero router (p = 1/G) and s = G: the training forward's logits are the
//             dense model's (LLaMA-MoE v2's scale factor);
//   errors:   bad attention MoE layers refused by trainModel, naming the layer and what was expected.
// The whole-model gradients of a layer with both an attention MoE and a MoE FFN are in moe.check.ts.
import type { CheckCase } from '../ops/check.ts';
import { TOL, refusals, relL2 } from '../ops/check.ts';
import { dot, fdError } from '../ops/gradcheck.ts';
import { LlamaModel } from '../model/llama.ts';
import { llamaForwardRef } from '../model/llama.ref.ts';
import { base, randomModel } from '../model/llama.check.ts';
import { attentionMoe, type AttentionRouting } from './attention-moe.ts';
import { releaseTrainModel, sequenceLogits, trainModel } from './llama-train.ts';
import { attentionMoeRef, selectionRef } from './moe.ref.ts';
import { Param, Tape, Var } from './tape.ts';

const FAMILY = 'train attention moe';
/** Smallest p_(k) − p_(k+1) the random routers keep (the differences step by 1e-5). */
const MARGIN = 1e-3;
const DRAWS = 500;

interface BlockCase {
  T: number;
  H: number;
  heads: number;
  G: number;
  D: number;
  routing: AttentionRouting;
  auxScale?: number;
}

const blockCases: BlockCase[] = [
  { T: 9, H: 16, heads: 8, G: 4, D: 4, routing: { topK: 2, scale: 4 } },
  { T: 23, H: 20, heads: 6, G: 3, D: 5, routing: { topK: 1, scale: 3, auxCoef: 0.5 }, auxScale: 0.25 },
  { T: 13, H: 12, heads: 8, G: 8, D: 3, routing: { topK: 3, scale: 1.5, auxCoef: 0.3 } },
];

const blockChecks: CheckCase[] = blockCases.map((k) => ({
  family: FAMILY,
  name: `block: y, L_aux and ∂(g·y + s·α·L_aux)/∂{h, att, Wr} vs float64 differences, T${k.T} H${k.H}, ${k.heads} heads × ${k.D} in ${k.G} groups, top-${k.routing.topK}, s ${k.routing.scale}${k.routing.auxCoef ? `, L_aux α ${k.routing.auxCoef}` : ''}`,
  tol: TOL.grad,
  async run(gpu, rng) {
    const { T, H, heads, G, D, routing } = k;
    const s = k.auxScale ?? 1;
    const h = rng.normals(T * H);
    const att = rng.normals(T * heads * D);
    let Wr = rng.normals(G * H, 2 / Math.sqrt(H));
    const ref0 = () => attentionMoeRef(h, att, Wr, T, H, heads, routing);
    for (let i = 0; ref0().margin < MARGIN; i++) {
      if (i === DRAWS) throw new Error(`no router in ${DRAWS} draws keeps a selection margin of ${MARGIN}`);
      Wr = rng.normals(G * H, 2 / Math.sqrt(H));
    }
    const ref = ref0();
    const selection = selectionRef(ref.routing, T).join(';');
    const g = rng.normals(T * heads * D);
    let flips = 0;
    const objective = (hv: ArrayLike<number>, av: ArrayLike<number>, wv: ArrayLike<number>) => {
      const r = attentionMoeRef(hv, av, wv, T, H, heads, routing);
      if (selectionRef(r.routing, T).join(';') !== selection) flips++;
      return dot(g, r.y) + s * (routing.auxCoef ?? 0) * r.aux;
    };

    const t = new Tape(gpu, true);
    const hv = new Var(gpu.upload(h, [T, H], 'h'), true, null, null);
    const av = new Var(gpu.upload(att, [T, heads * D], 'att'), true, null, null);
    const router = new Param('router', gpu.upload(Wr, [G, H], 'router'), true);
    const auxOut = gpu.tensor([1], 'f32', 'L_aux');
    const seed = gpu.upload(g, [T, heads * D], 'g');
    const yCopy = gpu.tensor([T, heads * D], 'f32', 'y');
    try {
      const y = attentionMoe(t, hv, av, t.param(router), { ...routing, heads, auxScale: s, auxOut: { loss: auxOut, offset: 0 } });
      gpu.copy(y.value, yCopy);
      t.backward(y, seed);
      const read = async (v: { read(): Promise<unknown> } | null) => (await v!.read()) as Float32Array;
      const outputs: Record<string, number> = {
        y: relL2(await read(yCopy), ref.y),
        dh: fdError((v) => objective(v, att, Wr), h, await read(hv.grad), rng),
        dAtt: fdError((v) => objective(h, v, Wr), att, await read(av.grad), rng),
        dWr: fdError((v) => objective(h, att, v), Wr, await read(router.grad), rng),
      };
      if (routing.auxCoef) outputs.L_aux = relL2(await read(auxOut), [ref.aux]);
      outputs['selection flips'] = flips;
      return { err: Math.max(...Object.values(outputs).map((e) => (Number.isNaN(e) ? Infinity : e))), outputs };
    } finally {
      t.release();
      for (const v of [hv, av]) {
        v.value.release();
        v.grad?.release();
      }
      router.release();
      for (const b of [auxOut, seed, yCopy]) b.release();
    }
  },
}));

/** Every layer's attention an attention MoE with all G groups, a zero router and s = G: the dense logits. */
const identity: CheckCase = {
  family: FAMILY,
  name: `identity: every layer's attention MoE with all ${base.nKvHeads} groups, zero router, s = ${base.nKvHeads} → the dense model's logits`,
  tol: TOL.gemm,
  async run(gpu, rng) {
    const c = base;
    const G = c.nKvHeads;
    const { index, weights } = randomModel(c, rng);
    const ids = Array.from({ length: 12 }, () => rng.int(c.vocabSize));
    const model = await LlamaModel.load(gpu, index, { chunk: 1, seqLen: 1 });
    const routers = Array.from({ length: c.nLayers }, () => gpu.upload(new Float32Array(G * c.dim), [G, c.dim], 'self_attn.gate'));
    const freeze = { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } };
    const dense = trainModel(model, { recompute: false, freeze });
    const gated = trainModel(model, { recompute: false, freeze, attention: new Map(routers.map((router, l) => [l, { router, routing: { topK: G, scale: G } }])) });
    const idsT = gpu.upload(Uint32Array.from(ids), [ids.length]);
    const [a, b] = [gpu.tensor([ids.length, c.vocabSize]), gpu.tensor([ids.length, c.vocabSize])];
    try {
      sequenceLogits(dense, idsT, a);
      sequenceLogits(gated, idsT, b);
      const want = llamaForwardRef(c, weights, ids);
      const [la, lb] = [(await a.read()) as Float32Array, (await b.read()) as Float32Array];
      const outputs = { 'attention MoE vs dense (GPU)': relL2(lb, la), 'attention MoE vs dense float64': relL2(lb, want) };
      return { err: Math.max(...Object.values(outputs)), outputs };
    } finally {
      releaseTrainModel(dense);
      releaseTrainModel(gated);
      model.release();
      for (const t of [...routers, idsT, a, b]) t.release();
    }
  },
};

const errors: CheckCase = {
  family: FAMILY,
  name: 'trainModel refuses bad attention MoE layers, naming the layer, the field and what it expected',
  tol: 0,
  async run(gpu, rng) {
    const c = base;
    const G = c.nKvHeads;
    const { index } = randomModel(c, rng);
    const model = await LlamaModel.load(gpu, index, { chunk: 1, seqLen: 1 });
    const good = gpu.tensor([G, c.dim], 'f32', 'router');
    const wrong = gpu.tensor([G + 1, c.dim], 'f32', 'router');
    const freeze = { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } };
    const attempt = (l: number, router: typeof good, routing: AttentionRouting) => () => trainModel(model, { recompute: false, freeze, attention: new Map([[l, { router, routing }]]) });
    const cases: [string, () => unknown, string[]][] = [
      [`topK ${G + 1} of ${G} groups`, attempt(1, good, { topK: G + 1, scale: G }), ['model.layers.1.self_attn', 'topK', `[1, ${G}]`]],
      [`router of ${G + 1} rows`, attempt(0, wrong, { topK: 1, scale: G }), ['model.layers.0.self_attn.gate', `[${G}, ${c.dim}]`]],
      ['scale NaN', attempt(1, good, { topK: 1, scale: NaN }), ['model.layers.1.self_attn', 'scale']],
      [`layer ${c.nLayers}`, attempt(c.nLayers, good, { topK: 1, scale: G }), [`attention MoE layer ${c.nLayers}`, `0..${c.nLayers - 1}`]],
    ];
    let outputs: Record<string, number>;
    try {
      outputs = refusals(cases);
    } finally {
      model.release();
      good.release();
      wrong.release();
    }
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const trainAttentionMoeChecks: CheckCase[] = [...blockChecks, identity, errors];
