// Kernel benchmarks: median GFLOP/s and GB/s per kernel and shape after warm-up. Shapes are the
// foundation issue's: GEMM 1024³ and 4096³, and the FFN / MoE shapes of a 7M and a 7B LLaMA at 2048
// tokens, with the grouped MoE GEMM beside a dense GEMM of the same active FLOPs; and the training ops
// and the whole forward + backward of a small LLaMA (hidden 64, vocab 2048, one 128-token sequence).
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { Rng } from '../data/rng.ts';
import { matmul } from './matmul.ts';
import { swiglu } from './activation.ts';
import { moeExperts, moeForward, type MoeForwardResult, type MoeWeights } from './moe.ts';
import { createDistillState, moeDistillStep, releaseDistillState } from './moe-train.ts';
import { attentionBackward, attentionTrain } from './attention.ts';
import { crossEntropyBackward } from './softmax.ts';
import { rmsNorm, rmsNormBackward } from './norm.ts';
import { embeddingBackward } from './embedding.ts';
import type { ModelConfig } from '../model/config.ts';
import { LlamaModel } from '../model/llama.ts';
import { convertLayers } from '../moe/block.ts';
import { randomModel } from '../model/llama.check.ts';
import { releaseTrainModel, sequenceLoss, trainModel } from '../train/llama-train.ts';
import { AdamW } from '../train/optim.ts';

export type BenchSuite = 'small' | 'full';

export interface BenchArgs {
  /** 'full': every shape of the issue; 'small': those that finish in seconds on SwiftShader. Default:
   * full on a GPU, small on a software adapter. */
  suite?: BenchSuite;
  /** Only cases whose name contains one of these. */
  filter?: string[];
  /** Timed repetitions per sample, samples per case. */
  reps?: number;
  samples?: number;
}

export interface BenchRow {
  name: string;
  shape: string;
  ms: number;
  gflops: number;
  gbps: number;
  timer: 'timestamp' | 'wall';
  /** For MoE rows: the dense GEMM of equal active FLOPs, and the ratio of rates. */
  denseGflops?: number;
  ratioToDense?: number;
}

interface BenchCase {
  name: string;
  suite: BenchSuite;
  /** Name of the case whose rate this one is compared with (grouped MoE GEMM vs dense of equal FLOPs). */
  compareTo?: string;
  shape: string;
  flops: number;
  bytes: number;
  /** What to record per repetition, and what to release after (tensors, or a state that owns some). */
  setup(gpu: Gpu, rng: Rng): Setup | Promise<Setup>;
  /** Timed by the wall clock: its work spans several passes (copies end a pass), timestamps one. */
  wall?: boolean;
}

interface Setup { record: () => void; release: { release(): void }[] }

function gemmCase(suite: BenchSuite, name: string, M: number, N: number, K: number, transB = false): BenchCase {
  return {
    name,
    suite,
    shape: `${M}×${N}×${K}${transB ? ' (A·Bᵀ)' : ''}`,
    flops: 2 * M * N * K,
    bytes: 4 * (M * K + K * N + M * N),
    setup(gpu, rng) {
      const a = gpu.upload(rng.uniforms(M * K, -1, 1), [M, K]);
      const b = gpu.upload(rng.uniforms(K * N, -1, 1), transB ? [N, K] : [K, N]);
      const c = gpu.tensor([M, N]);
      return { record: () => void matmul(a, b, { transB, out: c }), release: [a, b, c] };
    },
  };
}

/** A LLaMA FFN shape: hidden H, intermediate I, at T tokens; E experts of I/E neurons each (LaDiMo's split), top-k. */
interface FfnShape { label: string; suite: BenchSuite; T: number; H: number; I: number; E: number; k: number }

const FFN_SHAPES: FfnShape[] = [
  { label: '7M', suite: 'small', T: 2048, H: 256, I: 688, E: 8, k: 2 },
  { label: '7B', suite: 'full', T: 2048, H: 4096, I: 11008, E: 8, k: 2 },
];

/** Dense SwiGLU FFN down(silu(x·Wgᵀ) ⊙ x·Wuᵀ) on T tokens: 6·T·H·I FLOPs. */
function denseFfnCase(suite: BenchSuite, name: string, T: number, H: number, I: number): BenchCase {
  return {
    name,
    suite,
    shape: `T${T} H${H} I${I}`,
    flops: 6 * T * H * I,
    bytes: 4 * (T * H * 2 + 3 * H * I + 3 * T * I),
    setup(gpu, rng) {
      const x = gpu.upload(rng.uniforms(T * H, -1, 1), [T, H]);
      const [Wg, Wu] = [0, 1].map(() => gpu.upload(rng.uniforms(I * H, -0.05, 0.05), [I, H]));
      const Wd = gpu.upload(rng.uniforms(H * I, -0.05, 0.05), [H, I]);
      const [g, u, h] = [0, 1, 2].map(() => gpu.tensor([T, I]));
      const y = gpu.tensor([T, H]);
      const record = () => {
        matmul(x, Wg, { transB: true, out: g });
        matmul(x, Wu, { transB: true, out: u });
        swiglu(g, u, { out: h });
        matmul(h, Wd, { transB: true, out: y });
      };
      return { record, release: [x, Wg, Wu, Wd, g, u, h, y] };
    },
  };
}

function moeWeights(gpu: Gpu, rng: Rng, s: FfnShape): MoeWeights {
  const Ie = s.I / s.E;
  return {
    router: gpu.upload(rng.normals(s.E * s.H, 0.02), [s.E, s.H]),
    gate_proj: gpu.upload(rng.uniforms(s.E * Ie * s.H, -0.05, 0.05), [s.E, Ie, s.H]),
    up_proj: gpu.upload(rng.uniforms(s.E * Ie * s.H, -0.05, 0.05), [s.E, Ie, s.H]),
    down_proj: gpu.upload(rng.uniforms(s.E * s.H * Ie, -0.05, 0.05), [s.E, s.H, Ie]),
  };
}

function releaseMoe(w: MoeWeights, r: MoeForwardResult): Tensor[] {
  const outs = Object.values(r).filter((v): v is Tensor => typeof v === 'object');
  return [...Object.values(w), ...outs];
}

/** The whole MoE block: router GEMM, softmax/top-k, permutation, grouped expert GEMMs, combine. */
function moeBlockCase(s: FfnShape): BenchCase {
  const Ie = s.I / s.E;
  return {
    name: `moe block ${s.label} ${s.E}×top-${s.k}`,
    suite: s.suite,
    shape: `T${s.T} H${s.H} Ie${Ie}`,
    flops: 2 * s.T * s.H * s.E + 6 * s.T * s.k * s.H * Ie,
    bytes: 4 * (2 * s.T * s.H + 3 * s.E * Ie * s.H + s.T * s.k * (Ie + s.H)),
    setup(gpu, rng) {
      const x = gpu.upload(rng.uniforms(s.T * s.H, -1, 1), [s.T, s.H]);
      const w = moeWeights(gpu, rng, s);
      const r = moeForward(x, w, { topK: s.k });
      return { record: () => void moeForward(x, w, { topK: s.k, out: r }), release: [x, ...releaseMoe(w, r)] };
    },
  };
}

/** The grouped expert GEMMs alone (routing done once in setup), compared with a dense FFN of equal FLOPs. */
function groupedGemmCase(s: FfnShape): BenchCase {
  const Ie = s.I / s.E;
  const dense = `dense FFN ${s.label} at T·k rows, I/E`;
  return {
    name: `moe grouped GEMMs ${s.label}`,
    suite: s.suite,
    compareTo: dense,
    shape: `${s.T * s.k} slots H${s.H} Ie${Ie}`,
    flops: 6 * s.T * s.k * s.H * Ie,
    bytes: 4 * (s.T * s.k * (2 * s.H + Ie) + 3 * s.E * Ie * s.H),
    setup(gpu, rng) {
      const x = gpu.upload(rng.uniforms(s.T * s.H, -1, 1), [s.T, s.H]);
      const w = moeWeights(gpu, rng, s);
      const r = moeForward(x, w, { topK: s.k });
      return { record: () => void moeExperts(x, w, r, { h: r.h, ys: r.ys }), release: [x, ...releaseMoe(w, r)] };
    },
  };
}

/**
 * One LaDiMo distillation step (§4.2–4.3) at the budget, 512 tokens: router, routing, permutation,
 * grouped experts, combine, loss, the whole backward and Adam, recorded `reps` times per submit as the run
 * records them. FLOPs count the GEMMs only: forward 2·T·H·E + 6·T·k·H·Ie, backward twice that.
 */
function distillStepCase(s: FfnShape): BenchCase {
  const Ie = s.I / s.E;
  const T = 512;
  return {
    name: `distill step ${s.label} ${s.E}×top-${s.k}`,
    suite: s.suite,
    shape: `T${T} H${s.H} Ie${Ie}`,
    flops: 3 * (2 * T * s.H * s.E + 6 * T * s.k * s.H * Ie),
    bytes: 4 * (3 * T * s.H + 4 * 3 * s.E * Ie * s.H),
    setup(gpu, rng) {
      const x = gpu.upload(rng.uniforms(T * s.H, -1, 1), [T, s.H]);
      const target = gpu.upload(rng.uniforms(T * s.H, -0.1, 0.1), [T, s.H]);
      const w = moeWeights(gpu, rng, s);
      const state = createDistillState(gpu, w, { topK: s.k, T, alpha: 0.01, lr: 1e-4 });
      return {
        record: () => void moeDistillStep(state, { x, target }),
        release: [x, target, ...Object.values(w), { release: () => releaseDistillState(state) }],
      };
    },
  };
}

/** The training model's shapes: T tokens, hidden H, vocab V, Hq query and Hkv kv heads of D dims. */
const TR = { T: 128, H: 64, V: 2048, Hq: 4, Hkv: 2, D: 16 };

/** One training op at TR's shapes; FLOPs and bytes as given. */
function trainOpCase(name: string, shape: string, flops: number, bytes: number, setup: BenchCase['setup']): BenchCase {
  return { name: `train ${name}`, suite: 'small', shape, flops, bytes, setup };
}

const trainOpCases: BenchCase[] = [
  trainOpCase('attention fwd', `T${TR.T} Hq${TR.Hq} Hkv${TR.Hkv} D${TR.D}`, 2 * TR.T * TR.T * TR.Hq * TR.D, 4 * 4 * TR.T * TR.Hq * TR.D, (gpu, rng) => {
    const q = gpu.upload(rng.uniforms(TR.T * TR.Hq * TR.D, -1, 1), [TR.T, TR.Hq, TR.D]);
    const [k, v] = [0, 1].map(() => gpu.upload(rng.uniforms(TR.T * TR.Hkv * TR.D, -1, 1), [TR.T, TR.Hkv, TR.D]));
    const r = attentionTrain(q, k, v);
    return { record: () => void attentionTrain(q, k, v, { out: r }), release: [q, k, v, r.out, r.lse] };
  }),
  trainOpCase('attention bwd', `T${TR.T} Hq${TR.Hq} Hkv${TR.Hkv} D${TR.D}`, 5 * TR.T * TR.T * TR.Hq * TR.D, 4 * 8 * TR.T * TR.Hq * TR.D, (gpu, rng) => {
    const q = gpu.upload(rng.uniforms(TR.T * TR.Hq * TR.D, -1, 1), [TR.T, TR.Hq, TR.D]);
    const [k, v] = [0, 1].map(() => gpu.upload(rng.uniforms(TR.T * TR.Hkv * TR.D, -1, 1), [TR.T, TR.Hkv, TR.D]));
    const dOut = gpu.upload(rng.uniforms(TR.T * TR.Hq * TR.D, -1, 1), [TR.T, TR.Hq, TR.D]);
    const f = attentionTrain(q, k, v);
    const g = attentionBackward(q, k, v, f.out, f.lse, dOut);
    return { record: () => void attentionBackward(q, k, v, f.out, f.lse, dOut, { out: g }), release: [q, k, v, dOut, f.out, f.lse, g.dq, g.dk, g.dv] };
  }),
  trainOpCase('lm-head dW (Aᵀ·B)', `${TR.V}×${TR.H}×${TR.T}`, 2 * TR.V * TR.H * TR.T, 4 * (2 * TR.T * (TR.V + TR.H) + TR.V * TR.H), (gpu, rng) => {
    const dl = gpu.upload(rng.uniforms(TR.T * TR.V, -1, 1), [TR.T, TR.V]);
    const h = gpu.upload(rng.uniforms(TR.T * TR.H, -1, 1), [TR.T, TR.H]);
    const dW = gpu.tensor([TR.V, TR.H]);
    return { record: () => void matmul(dl, h, { transA: true, out: dW }), release: [dl, h, dW] };
  }),
  trainOpCase('cross-entropy bwd', `${TR.T}×${TR.V}`, 0, 4 * 2 * TR.T * TR.V, (gpu, rng) => {
    const logits = gpu.upload(rng.uniforms(TR.T * TR.V, -4, 4), [TR.T, TR.V]);
    const targets = gpu.upload(Uint32Array.from({ length: TR.T }, () => rng.int(TR.V)), [TR.T]);
    const r = crossEntropyBackward(logits, targets, { scale: 1 / TR.T });
    return {
      record: () => void crossEntropyBackward(logits, targets, { scale: 1 / TR.T, loss: r.loss, dlogits: r.dlogits }),
      release: [logits, targets, r.loss, r.dlogits],
    };
  }),
  trainOpCase('rmsnorm fwd', `${TR.T}×${TR.H}`, 0, 4 * 2 * TR.T * TR.H, (gpu, rng) => {
    const x = gpu.upload(rng.uniforms(TR.T * TR.H, -1, 1), [TR.T, TR.H]);
    const w = gpu.upload(rng.uniforms(TR.H, 0.8, 1.2), [TR.H]);
    const y = rmsNorm(x, w, { eps: 1e-5 });
    return { record: () => void rmsNorm(x, w, { eps: 1e-5, out: y }), release: [x, w, y] };
  }),
  trainOpCase('rmsnorm bwd', `${TR.T}×${TR.H}`, 0, 4 * 3 * TR.T * TR.H, (gpu, rng) => {
    const x = gpu.upload(rng.uniforms(TR.T * TR.H, -1, 1), [TR.T, TR.H]);
    const w = gpu.upload(rng.uniforms(TR.H, 0.8, 1.2), [TR.H]);
    const dy = gpu.upload(rng.uniforms(TR.T * TR.H, -1, 1), [TR.T, TR.H]);
    const g = rmsNormBackward(x, w, dy, { eps: 1e-5 });
    return { record: () => void rmsNormBackward(x, w, dy, { eps: 1e-5, out: g }), release: [x, w, dy, g.dx, g.dWeight] };
  }),
  trainOpCase('embedding bwd', `${TR.T} ids of ${TR.V}×${TR.H}`, 0, 4 * (TR.T * TR.H + TR.V * TR.H), (gpu, rng) => {
    const ids = gpu.upload(Uint32Array.from({ length: TR.T }, () => rng.int(TR.V)), [TR.T]);
    const dOut = gpu.upload(rng.uniforms(TR.T * TR.H, -1, 1), [TR.T, TR.H]);
    const d = embeddingBackward(ids, dOut, TR.V);
    return { record: () => void embeddingBackward(ids, dOut, TR.V, { out: d }), release: [ids, dOut, d] };
  }),
];

/**
 * One training step on one TR.T-token sequence of a random 4-layer LLaMA of TR's shapes, as the trainer
 * records it: forward, backward, gradient clipping and AdamW on every parameter. FLOPs count the GEMMs:
 * 6 per parameter and token.
 */
function trainStepCase(): BenchCase {
  const c: ModelConfig = {
    arch: 'llama', dim: TR.H, hiddenDim: 172, nLayers: 4, nHeads: TR.Hq, nKvHeads: TR.Hkv, headDim: TR.D,
    vocabSize: TR.V, maxSeqLen: 256, normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'half', tiedEmbeddings: true,
    qkvBias: false, bosId: 1, eosId: 2,
  };
  const perLayer = 2 * TR.H * TR.Hq * TR.D + 2 * TR.H * TR.Hkv * TR.D + 3 * TR.H * c.hiddenDim;
  const params = c.nLayers * perLayer + TR.V * TR.H;
  return {
    name: 'train step 4-layer',
    suite: 'small',
    wall: true,
    shape: `T${TR.T} H${TR.H} V${TR.V} L${c.nLayers}`,
    flops: 6 * params * TR.T,
    bytes: 4 * 3 * params,
    async setup(gpu, rng) {
      const model = await LlamaModel.load(gpu, randomModel(c, rng).index);
      const m = trainModel(model, { freeze: { only: [], freeze: [], fields: { only: 'only', freeze: 'freeze' } }, recompute: false });
      const ids = gpu.upload(Uint32Array.from({ length: TR.T }, () => rng.int(TR.V)), [TR.T]);
      const targets = gpu.upload(Uint32Array.from({ length: TR.T }, () => rng.int(TR.V)), [TR.T]);
      const ce = gpu.tensor([TR.T]);
      const opt = new AdamW(gpu, m.params.trainable(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 });
      const record = () => {
        opt.zeroGrad();
        sequenceLoss(m, { ids, targets }, { train: true, ceScale: 1 / TR.T, klScale: 0, out: { ce, offset: 0 } });
        opt.update(1e-4);
      };
      return { record, release: [ids, targets, ce, opt, { release: () => { releaseTrainModel(m); model.release(); } }] };
    },
  };
}

/**
 * LaDiMo's throughput bar, as a benchmark: a whole prefill of a 7M LLaMA (corpus-llama-7m's shape, random
 * weights), dense or with its last 4 of 8 FFNs as 8 experts routed top-2, in 256-token chunks as
 * src/eval/compare.ts throughput() runs it. FLOPs count the GEMMs (2 per weight and token, attention's
 * score and value products over the causal prefix) so the MoE row's FLOP rate is per active FLOP.
 */
function prefillCase(moe: boolean): BenchCase {
  const c: ModelConfig = {
    arch: 'llama', dim: 256, hiddenDim: 688, nLayers: 8, nHeads: 8, nKvHeads: 4, headDim: 32, vocabSize: 4096,
    maxSeqLen: 1024, normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'half', tiedEmbeddings: true, qkvBias: false, bosId: 0, eosId: 1,
  };
  const s: FfnShape = { label: '7M', suite: 'small', T: c.maxSeqLen, H: c.dim, I: c.hiddenDim, E: 8, k: 2 };
  const moeLayers = moe ? [4, 5, 6, 7] : [];
  const T = c.maxSeqLen;
  const attnWeights = c.dim * (2 * c.nHeads + 2 * c.nKvHeads) * c.headDim;
  const ffnWeights = (l: number) => 3 * c.dim * (moeLayers.includes(l) ? s.k * s.I / s.E : s.I) + (moeLayers.includes(l) ? s.E * c.dim : 0);
  const weightFlops = 2 * T * (c.nLayers * attnWeights + c.vocabSize * c.dim + Array.from({ length: c.nLayers }, (_, l) => ffnWeights(l)).reduce((a, b) => a + b));
  const attnFlops = c.nLayers * 4 * c.nHeads * c.headDim * (T * (T + 1)) / 2;
  return {
    name: moe ? `prefill 7M, last 4 FFNs ${s.E}×top-${s.k}` : 'prefill 7M dense',
    suite: 'small',
    wall: true,
    shape: `T${T} in chunks of 256`,
    flops: weightFlops + attnFlops,
    bytes: 0,
    async setup(gpu, rng) {
      const model = await LlamaModel.load(gpu, randomModel(c, rng).index, { chunk: 256 });
      const blocks = convertLayers(model, new Map(moeLayers.map((l) => [l, { weights: moeWeights(gpu, rng, s), routing: { topK: s.k, normTopK: true } }])));
      const ids = Array.from({ length: T }, () => rng.int(c.vocabSize));
      const record = () => {
        model.reset();
        model.prefill(ids);
      };
      const release = () => {
        for (const b of blocks.values()) {
          b.release();
          for (const w of Object.values(b.layer.weights)) w.release();
        }
        model.release();
      };
      return { record, release: [{ release }] };
    },
  };
}

export const benchCases: BenchCase[] = [
  gemmCase('small', 'gemm 1024³', 1024, 1024, 1024),
  gemmCase('full', 'gemm 4096³', 4096, 4096, 4096),
  gemmCase('full', 'gemm A·Bᵀ 4096³', 4096, 4096, 4096, true),
  ...FFN_SHAPES.flatMap((s) => [
    denseFfnCase(s.suite, `dense FFN ${s.label}`, s.T, s.H, s.I),
    moeBlockCase(s),
    groupedGemmCase(s),
    denseFfnCase(s.suite, `dense FFN ${s.label} at T·k rows, I/E`, s.T * s.k, s.H, s.I / s.E),
  ]),
  prefillCase(false),
  prefillCase(true),
  distillStepCase(FFN_SHAPES[0]),
  ...trainOpCases,
  trainStepCase(),
];

export async function runBench(gpu: Gpu, args: BenchArgs, progress: (m: string) => void): Promise<{ suite: BenchSuite; rows: BenchRow[] }> {
  const rng = new Rng(7);
  const suite = args.suite ?? (gpu.info.software ? 'small' : 'full');
  const reps = args.reps ?? (gpu.info.software ? 1 : 10);
  const samples = args.samples ?? (gpu.info.software ? 3 : 7);
  const rows: BenchRow[] = [];
  for (const c of benchCases) {
    if (suite === 'small' && c.suite === 'full') continue;
    if (args.filter?.length && !args.filter.some((f) => c.name.includes(f))) continue;
    const { record, release } = await c.setup(gpu, rng);
    await gpu.measure(1, record); // warm-up: pipeline compile, first-touch
    const times: number[] = [];
    let timer: BenchRow['timer'] = 'wall';
    for (let s = 0; s < samples; s++) {
      const m = c.wall ? await wallTime(gpu, reps, record) : await gpu.measure(reps, record);
      times.push(m.msPerRep);
      timer = m.source;
    }
    for (const t of release) t.release();
    const ms = median(times);
    const row: BenchRow = { name: c.name, shape: c.shape, ms, gflops: c.flops / ms / 1e6, gbps: c.bytes / ms / 1e6, timer };
    rows.push(row);
    progress(`${c.name.padEnd(34)} ${c.shape.padEnd(24)} ${ms.toFixed(3).padStart(10)} ms ${row.gflops.toFixed(1).padStart(9)} GFLOP/s ${row.gbps.toFixed(1).padStart(8)} GB/s`);
  }
  for (const c of benchCases) {
    const row = rows.find((r) => r.name === c.name);
    const base = rows.find((r) => r.name === c.compareTo);
    if (row && base) {
      row.denseGflops = base.gflops;
      row.ratioToDense = row.gflops / base.gflops;
      progress(`${c.name}: ${(100 * row.ratioToDense).toFixed(0)}% of the dense rate at equal FLOPs (${c.compareTo})`);
    }
  }
  return { suite, rows };
}

async function wallTime(gpu: Gpu, reps: number, record: () => void): Promise<{ msPerRep: number; source: 'wall' }> {
  await gpu.sync();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) record();
  await gpu.sync();
  return { msPerRep: (performance.now() - t0) / reps, source: 'wall' };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
