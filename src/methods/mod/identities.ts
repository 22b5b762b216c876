// The identities of the Mixture-of-Depths head (arXiv:2410.13077 §2.2–2.3) on a real checkpoint, as a
// GPU task the tests run on any host:
//   k = 0                        the ensemble is the model: its log-probabilities are log-softmax of the
//                                inference forward's logits, its CE the training forward's (sequenceLoss)
//   all router weight on final   (W_g = 0, bias row (200, 0, …): softmax gives exactly (1, 0, …) in f32)
//                                the same, for both mixing spaces
//   N_i(h_i) = N(h_L) for all i  every member is the final normalised state: Σ_i KL(p_final ‖ p_i) = 0
import type { Gpu } from '../../gpu/device.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { HostIO } from '../../cli/io.ts';
import { relL2 } from '../../ops/check.ts';
import { openCheckpoint } from '../../model/load.ts';
import { LlamaModel } from '../../model/llama.ts';
import { decoderLayer, releaseTrainModel, sequenceLoss, trainModel, type TrainModel } from '../../train/llama-train.ts';
import { embed, rmsNorm } from '../../train/ops.ts';
import { Tape } from '../../train/tape.ts';
import { addModHead, modHeadLoss, modSequenceLoss, type ModHead } from './ensemble.ts';
import type { MixSpace } from '../../ops/mod-mix.ts';

export interface IdentityArgs {
  model: string;
  /** token ids, BOS first */
  ids: number[];
}

/** Relative L2 errors against the base model, and the largest |KL| of the equal-members case. */
export interface IdentityReport {
  k0: { logProbs: number; ce: number };
  allFinal: Record<MixSpace, { logProbs: number; ce: number }>;
  klEqualMembers: { maxAbsKl: number; ce: number };
}

export async function modIdentities(gpu: Gpu, args: IdentityArgs, progress: (m: string) => void, io: HostIO): Promise<IdentityReport> {
  const ckpt = await openCheckpoint(await io.open([args.model]));
  const c = ckpt.config;
  const T = args.ids.length - 1, V = c.vocabSize;
  const inference = await LlamaModel.load(gpu, ckpt.weights, { chunk: T, seqLen: T });
  const model = await LlamaModel.load(gpu, ckpt.weights, { chunk: 1, seqLen: 1 });
  const m = trainModel(model, { freeze: { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } }, recompute: false });
  for (const p of m.params.all()) p.trainable = false;
  const ids = gpu.upload(Uint32Array.from(args.ids.slice(0, T)), [T], 'ids'), targets = gpu.upload(Uint32Array.from(args.ids.slice(1)), [T], 'targets');
  const ce = gpu.tensor([T], 'f32', 'ce'), kl = gpu.tensor([T], 'f32', 'kl'), lp = gpu.tensor([T, V], 'f32', 'logProbs');
  const heads: ModHead[] = [];
  try {
    // the base model: log-softmax of the inference forward's logits in float64, CE of the training forward
    const logits = (await inference.forward(args.ids.slice(0, T)).read()) as Float32Array;
    const baseLp = new Float64Array(T * V);
    for (let t = 0; t < T; t++) {
      let mx = -Infinity, s = 0;
      for (let j = 0; j < V; j++) mx = Math.max(mx, logits[t * V + j]);
      for (let j = 0; j < V; j++) s += Math.exp(logits[t * V + j] - mx);
      for (let j = 0; j < V; j++) baseLp[t * V + j] = logits[t * V + j] - mx - Math.log(s);
    }
    sequenceLoss(m, { ids, targets }, { train: false, ceScale: 0, klScale: 0, out: { ce, offset: 0 } });
    const baseCe = (await ce.read()) as Float32Array;
    const head = (k: number, mix: MixSpace) => {
      const h = addModHead(m, { k, mix, initFinal: 0.5 });
      heads.push(h);
      return h;
    };
    const versus = async (h: ModHead) => {
      modSequenceLoss(m, h, { ids, targets }, { train: false, ceScale: 0, klScale: 0, out: { ce, offset: 0 }, logProbs: lp });
      return { logProbs: relL2(await lp.read(), baseLp), ce: relL2(await ce.read(), baseCe) };
    };
    const k0 = await versus(head(0, 'prob'));
    progress(`k = 0: log-probabilities ${k0.logProbs.toExponential(2)}, CE ${k0.ce.toExponential(2)} from the base model`);
    const allFinal = {} as IdentityReport['allFinal'];
    const h3 = head(3, 'prob');
    const b = new Float32Array(4);
    b[0] = 200;
    gpu.write(h3.router!.bias.value, b);
    for (const mix of ['prob', 'logit'] as const) {
      allFinal[mix] = await versus({ ...h3, mix });
      progress(`all weight on the final layer (${mix}): log-probabilities ${allFinal[mix].logProbs.toExponential(2)}, CE ${allFinal[mix].ce.toExponential(2)}`);
    }
    const klEqualMembers = await equalMembers(m, heads[1], ids, targets, ce, kl, baseCe);
    progress(`every N_i(h_i) = N(h_L): max |Σ KL| ${klEqualMembers.maxAbsKl}`);
    return { k0, allFinal, klEqualMembers };
  } finally {
    for (const h of heads) for (const p of [...h.norms, ...(h.router ? [h.router.weight, h.router.bias] : [])]) p.release();
    releaseTrainModel(m);
    for (const t of [ids, targets, ce, kl, lp]) t.release();
    model.release();
    inference.release();
  }
}

/** The head over K copies of the final normalised state: the KL term and the CE (which is the base's). */
async function equalMembers(m: TrainModel, h: ModHead, ids: Tensor, targets: Tensor, ce: Tensor, kl: Tensor, baseCe: Float32Array): Promise<IdentityReport['klEqualMembers']> {
  const c = m.config;
  const t = new Tape(ids.gpu, false);
  try {
    const P = (name: string) => t.param(m.params.get(name));
    let x = embed(t, P('model.embed_tokens.weight'), ids);
    for (let l = 0; l < c.nLayers; l++) x = decoderLayer(t, m, l, x);
    const final = rmsNorm(t, x, P('model.norm.weight'), c.normEps);
    // a router of random logits: the KL term does not depend on g
    const K = h.layers.length + 1, T = ids.shape[0];
    const router = t.input(ids.gpu.upload(Float32Array.from({ length: T * K }, (_, i) => Math.sin(i)), [T, K], 'router'));
    modHeadLoss(t, Array.from({ length: K }, () => final), router, P(c.tiedEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), targets, h, { train: false, ceScale: 0, klScale: 0, out: { ce, kl, offset: 0 } });
    router.value.release();
  } finally {
    t.release();
  }
  const k = (await kl.read()) as Float32Array;
  return { maxAbsKl: Math.max(...k.map(Math.abs)), ce: relL2(await ce.read(), baseCe) };
}
