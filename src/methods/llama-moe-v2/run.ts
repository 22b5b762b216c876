// LLaMA-MoE v2 (arXiv 2411.15708) for the CLI (`moefy run`, method 'llama-moe-v2'): the MLPs of
// construct.layers become MoE layers (build.ts: LaDiMo's capture of the FFN inputs → neuron statistics →
// vanilla or residual MLP MoE, router initialisation), then the paper's two-stage post-training with the
// language-modelling loss plus each layer's own balance loss (v2.balance) on the training engine:
//   stage 1  general text (v2.stage1Domains, the Brown prose),
//   stage 2  specialised text (v2.stage2Domains, math and code), v2.stage2Replay of it from stage 1's text.
// Full-parameter or LoRA, and what trains, as train.* says. After construction and after each stage, on
// the held-out text of every stage domain: perplexity, and next-token agreement and KL against the dense
// model (a copy kept untrained); the parameters a token activates, attention and MLP apart; dense and MoE
// tokens/s. Attention MoE (v2.attention) has no training op yet, so a run converts MLPs only.
import type { Gpu } from '../../gpu/device.ts';
import type { HostIO } from '../../cli/io.ts';
import { compareModels, throughput } from '../../eval/compare.ts';
import { evalWindows } from '../../eval/perplexity.ts';
import { openCheckpoint } from '../../model/load.ts';
import { LlamaModel } from '../../model/llama.ts';
import { checkTokenizer } from '../../model/tokenizer.ts';
import { convertLayers } from '../../moe/block.ts';
import { SpecError, specLayers, type RunSpec } from '../../state/spec.ts';
import { trainTokens, type TrainTokens } from '../../train/data.ts';
import { releaseTrainModel } from '../../train/llama-train.ts';
import { globMatch, patternList } from '../../train/params.ts';
import { loopOptions, specTrainModel, throttle } from '../../train/task.ts';
import { train } from '../../train/trainer.ts';
import { captureFfn } from '../ladimo/capture.ts';
import { calibrationWindows, textDataFromFiles, type TextData } from '../ladimo/data.ts';
import { attentionParams } from '../ladimo/params.ts';
import { constructMlpLayers, inferenceLayers, trainLayers, type ConstructedLayer } from './build.ts';
import { releaseMlpMoe } from './layer.ts';

/** The model's scores on one domain's held-out windows. */
export interface DomainScore {
  domain: string;
  ppl: number;
  /** share of positions where the model and the dense one predict the same next token */
  agreement: number;
  /** mean KL(p_dense ‖ p_model), nats */
  kl: number;
}

export interface V2Point {
  after: 'construction' | 'stage 1' | 'stage 2';
  scores: DomainScore[];
  /** exp(mean log ppl) over the stage 1 domains (prose) and the stage 2 domains (specialised) */
  ppl_stage1_domains: number;
  ppl_stage2_domains: number;
}

export interface V2Stage {
  stage: 1 | 2;
  domains: string[];
  /** share of the stage's training tokens from stage 1's text (stage 2's replay) */
  replay: number;
  steps: number;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  params: { total: number; trainable: number };
  /** held-out loss (train.* windows of the stage's own text) before and after */
  loss_before: number;
  loss_after: number;
}

export interface V2Metrics {
  device: string;
  layers: number[];
  construction: Pick<RunSpec, 'v2.mlp' | 'v2.experts' | 'v2.topK' | 'v2.sharedRatio' | 'v2.partition' | 'v2.routerInit'> & {
    /** per converted layer: the shared expert's neurons (0 when vanilla) and each routed expert's */
    shared_neurons: number;
    expert_neurons: number;
    calibration_tokens: number;
  };
  /** parameters a token activates in the converted layers: attention (unchanged), MLP dense vs MoE (router included) */
  activated: { attention: number; mlp_dense: number; mlp_moe: number; mlp_share: number };
  dense: { domain: string; ppl: number }[];
  points: V2Point[];
  stages: V2Stage[];
  throughput: { prefill_dense: number; prefill_moe: number; decode_dense: number; decode_moe: number };
}

/** The data's domains that a comma-separated list of names or globs (`field`) picks, in the data's order. */
function pickDomains(data: TextData, spec: RunSpec, field: 'v2.stage1Domains' | 'v2.stage2Domains'): string[] {
  const patterns = patternList(spec[field]);
  for (const p of patterns) {
    if (!data.domains.some((d) => globMatch(p, d.name))) throw new SpecError(field, `'${p}' matches no domain of ${data.label} (domains: ${data.domains.map((d) => d.name).join(', ')})`);
  }
  return data.domains.filter((d) => patterns.some((p) => globMatch(p, d.name))).map((d) => d.name);
}

/** Stage 2's stream: its own text, then stage 1's first tokens, sized to be `share` of the whole. */
function withReplay(own: TrainTokens, general: TrainTokens, share: number): TrainTokens {
  if (share === 0) return own;
  const n = Math.min(general.train.length, Math.round((share / (1 - share)) * own.train.length));
  const train = new Uint32Array(own.train.length + n);
  train.set(own.train);
  train.set(general.train.subarray(0, n), own.train.length);
  return { domains: [...own.domains, ...general.domains], train, valid: own.valid };
}

const geomean = (v: readonly number[]) => Math.exp(v.reduce((s, x) => s + Math.log(x), 0) / v.length);

export async function runLlamaMoeV2(gpu: Gpu, spec: RunSpec, progress: (m: string) => void, io: HostIO): Promise<V2Metrics> {
  if (spec['v2.attention']) throw new SpecError('v2.attention', 'attention MoE is constructed and checked, but has no training op yet, so a run converts MLPs only: set it to false');
  const ckpt = await openCheckpoint(await io.open(spec.tokenizer ? [spec.model, spec.tokenizer] : [spec.model]));
  const tok = ckpt.tokenizer;
  checkTokenizer(tok, ckpt.config, { allowPadded: true });
  const data = await textDataFromFiles(await io.open([spec.data]), spec.data);
  const stage1Domains = pickDomains(data, spec, 'v2.stage1Domains');
  const stage2Domains = pickDomains(data, spec, 'v2.stage2Domains');
  const evalDomains = [...new Set([...stage1Domains, ...stage2Domains])];
  const c = ckpt.config;
  const layers = specLayers(spec, c.nLayers);
  const window = Math.min(spec['eval.window'], c.maxSeqLen);

  // the dense original (reference and capture) and the model that is converted and trained
  const dense = await LlamaModel.load(gpu, ckpt.weights);
  const student = await LlamaModel.load(gpu, ckpt.weights);
  let built: Map<number, ConstructedLayer> | null = null;
  try {
    // ---- construction: capture the FFN inputs of the converted layers, split each MLP, initialise routers
    const calib = (await calibrationWindows(data, spec, tok, window)).map((w) => w.ids);
    const cap = await captureFfn(dense, calib, layers, spec['calibration.tokens']);
    try {
      built = await constructMlpLayers(student, cap, spec);
    } finally {
      for (const L of cap.layers.values()) [L.x, L.fx].forEach((t) => t.release());
    }
    const first = built.values().next().value!;
    const sharedNeurons = first.moe.shared?.I ?? 0;
    const expertNeurons = first.moe.experts.expertDim;
    progress(`constructed ${layers.length} ${spec['v2.mlp']} MLP MoE layers (${layers.join(', ')}) from ${cap.tokens} calibration tokens: ` +
      `shared ${sharedNeurons} + ${spec['v2.experts']} experts of ${expertNeurons} neurons, top-${spec['v2.topK']}, routers ${spec['v2.routerInit']}`);

    const evals = new Map<string, number[][]>();
    for (const d of evalDomains) {
      const text = await data.domains.find((x) => x.name === d)!.text('valid');
      const w = evalWindows(text, tok, window, spec['v2.evalWindows']);
      if (!w.length) throw new Error(`${d}: its held-out text is shorter than one window of ${window} tokens (eval.window)`);
      evals.set(d, w);
    }

    // ---- scores of the student as it stands, its MLPs converted, against the dense model
    const denseScores: V2Metrics['dense'] = [];
    const score = async (after: V2Point['after']): Promise<V2Point> => {
      const blocks = convertLayers(student, inferenceLayers(built!, spec));
      try {
        const scores: DomainScore[] = [];
        for (const [domain, windows] of evals) {
          const cmp = await compareModels(dense, student, windows);
          if (after === 'construction') denseScores.push({ domain, ppl: cmp.pplDense });
          scores.push({ domain, ppl: cmp.pplMoe, agreement: cmp.agreement, kl: cmp.kl });
        }
        const mean = (ds: string[]) => geomean(scores.filter((s) => ds.includes(s.domain)).map((s) => s.ppl));
        const point = { after, scores, ppl_stage1_domains: mean(stage1Domains), ppl_stage2_domains: mean(stage2Domains) };
        progress(`after ${after}: perplexity ${point.ppl_stage1_domains.toFixed(3)} on the stage 1 domains, ${point.ppl_stage2_domains.toFixed(3)} on the stage 2 domains`);
        return point;
      } finally {
        for (const l of layers) student.restoreDense(l);
        for (const b of blocks.values()) b.release();
      }
    };
    const points = [await score('construction')];

    // ---- throughput: dense vs converted, on calibration text
    const tpIds = calib.flat().slice(0, Math.min(spec['eval.throughputTokens'], student.seqLen - spec['eval.decodeTokens']));
    const tDense = await throughput(dense, tpIds, spec['eval.decodeTokens']);
    const blocks = convertLayers(student, inferenceLayers(built, spec));
    const tMoe = await throughput(student, tpIds, spec['eval.decodeTokens']).finally(() => {
      for (const l of layers) student.restoreDense(l);
      for (const b of blocks.values()) b.release();
    });

    // ---- post-training: stage 1 on general text, stage 2 on specialised text
    const seqLen = spec['train.seqLen'];
    const general = await trainTokens(data, stage1Domains, tok, seqLen, spec['eval.maxWindows'], 'v2.stage1Domains');
    const special = withReplay(await trainTokens(data, stage2Domains, tok, seqLen, spec['eval.maxWindows'], 'v2.stage2Domains'), general, spec['v2.stage2Replay']);
    const stages: V2Stage[] = [];
    for (const [stage, tokens, steps] of [[1, general, spec['v2.stage1Steps']], [2, special, spec['v2.stage2Steps']]] as const) {
      const m = specTrainModel(student, spec, trainLayers(built, spec));
      try {
        const params = m.params.counts();
        progress(`stage ${stage}: training ${params.trainable} of ${params.total} parameters on ${tokens.train.length} tokens of ${tokens.domains.join(', ')}`);
        const r = await train(m, tokens, { ...loopOptions(spec), steps, onProgress: throttle((line) => progress(`stage ${stage}: ${line}`), 5000) });
        stages.push({
          stage, domains: tokens.domains, replay: stage === 2 ? spec['v2.stage2Replay'] : 0, steps: r.step, tokens: r.tokens, seconds: r.seconds,
          tokens_per_s: r.tokensPerS, params, loss_before: r.evals[0].loss, loss_after: r.evals.at(-1)!.loss,
        });
      } finally {
        releaseTrainModel(m);
      }
      points.push(await score(stage === 1 ? 'stage 1' : 'stage 2'));
    }

    const attention = layers.length * attentionParams(c);
    const mlpDense = layers.length * 3 * c.dim * c.hiddenDim;
    const mlpMoe = layers.length * (spec['v2.experts'] * c.dim + 3 * c.dim * (sharedNeurons + spec['v2.topK'] * expertNeurons));
    return {
      device: gpu.describe(),
      layers,
      construction: {
        'v2.mlp': spec['v2.mlp'], 'v2.experts': spec['v2.experts'], 'v2.topK': spec['v2.topK'], 'v2.sharedRatio': spec['v2.sharedRatio'],
        'v2.partition': spec['v2.partition'], 'v2.routerInit': spec['v2.routerInit'],
        shared_neurons: sharedNeurons, expert_neurons: expertNeurons, calibration_tokens: cap.tokens,
      },
      activated: { attention, mlp_dense: mlpDense, mlp_moe: mlpMoe, mlp_share: mlpMoe / mlpDense },
      dense: denseScores,
      points,
      stages,
      throughput: { prefill_dense: tDense.prefillTokensPerS, prefill_moe: tMoe.prefillTokensPerS, decode_dense: tDense.decodeTokensPerS, decode_moe: tMoe.decodeTokensPerS },
    };
  } finally {
    if (built) for (const L of built.values()) releaseMlpMoe(L.weights);
    dense.release();
    student.release();
  }
}
