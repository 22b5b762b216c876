// The LaDiMo pipeline as the UI sees it: plain data that crosses the worker boundary (structured clone),
// shared by the worker (src/worker/pipeline.ts), the store (src/state/pipeline.ts) and the charts
// (src/ui/charts). Field names follow the paper (LaDiMo, arXiv 2408.04278) and `moefy run --json`.
import type { LossPoint } from '../methods/ladimo/distill.ts';
import type { ModelScores } from '../methods/ladimo/evaluate.ts';
import type { TaskProgress, TaskStage } from '../methods/ladimo/progress.ts';
import type { LayerPolicy } from '../methods/ladimo/router-policy.ts';
import type { RunSpec } from '../state/spec.ts';
import type { TrainMetrics } from '../train/task.ts';
import type { DiveMetrics } from '../methods/dive/run.ts';
import type { V2Metrics } from '../methods/llama-moe-v2/run.ts';
import type { ModMetrics } from '../methods/mod/run.ts';
import type { EvalPoint, StepPoint } from '../train/trainer.ts';
import type { StorageBackend } from './storage.ts';

export type { DiveMetrics, EvalPoint, ModMetrics, V2Metrics, LayerPolicy, LossPoint, RunSpec, StepPoint, TaskProgress, TaskStage };

// ----------------------------------------------------------------------------- data

/** Calibration and evaluation text: the Brown Corpus built in, or the user's .txt files. */
export type DataSource =
  | { kind: 'builtin'; corpus: 'brown' }
  /** `<domain>.train.txt` / `<domain>.valid.txt` pairs; any other `<name>.txt` is one domain whose every 10th line is held out */
  | { kind: 'files'; files: File[] };

export interface DomainInfo {
  name: string;
  trainBytes: number;
  validBytes: number;
}

export interface DataSummary {
  label: string;
  domains: DomainInfo[];
}

// ----------------------------------------------------------------------------- distill

export interface LayerDistillResult {
  layer: number;
  /** held-out MSE of the block before and after training */
  mseBefore: number;
  mseFinal: number;
  /** ‖f̂ − f‖ / ‖f‖ on the held-out rows */
  relErr: number;
  /** share of held-out (token, slot) assignments per expert, length N */
  expertLoad: number[];
  seconds: number;
  curve: LossPoint[];
}

/** Streamed while a layer trains, so the loss chart grows live. */
export interface DistillUpdate {
  layer: number;
  point: LossPoint;
}

// ----------------------------------------------------------------------------- route (Appendix A)

/** Counts of w_m = max_e p_e over 50 equal bins of [0, 1]. */
export interface Histogram {
  /** bin i covers [i/bins, (i+1)/bins) (the last bin includes 1) */
  counts: number[];
  samples: number;
}

export interface LayerRouting {
  layer: number;
  histogram: Histogram;
  /** the same layer's histogram on each calibration domain's text (Fig. 9) */
  byDomain: { domain: string; histogram: Histogram }[];
  alphaI: number;
  betaI: number;
  /** the policy the profile set: Table 1's choice under router.policy 'adaptive', else the fixed top-k */
  policy: LayerPolicy;
  /** share of the profiled tokens sent to 1, 2, 3 experts under `policy` */
  kShare: [number, number, number];
}

export interface RoutingProfile {
  pU: number;
  pE: number;
  /** global quantiles over all MoE layers: P(w_m ≥ α) = p_u, P(w_m ≤ β) = p_e */
  alpha: number;
  beta: number;
  layers: LayerRouting[];
}

/** Parameters activated per token (LaDiMo §5.2), dense vs the current MoE policies. */
export interface ActivatedParams {
  dense: { total: number; nonEmbedding: number };
  moe: { total: number; nonEmbedding: number };
  /** per converted layer: the FFN's activated parameters under its policy */
  perLayer: { layer: number; dense: number; moe: number }[];
}

/** Routing of a text, for the classroom view: each token's experts in each MoE layer. */
export interface TokenRouting {
  /** the decoded pieces, one per token */
  tokens: string[];
  layers: {
    layer: number;
    /** per token: selected experts, best first, and their routing weights */
    experts: number[][];
    weights: number[][];
    /** per token: the full softmax over the N experts */
    probs: number[][];
  }[];
}

// ----------------------------------------------------------------------------- evaluate (§5.2–5.3)

/** `moefy run`'s model scores, with the activated parameters itemised (per layer) for the charts. */
export type ModelMetrics = Omit<ModelScores, 'activated_params_dense' | 'activated_params_moe' | 'activated_non_embedding_dense' | 'activated_non_embedding_moe'> & {
  activated: ActivatedParams;
  eval_tokens: number;
};

/** One point of the accuracy–throughput curve (Fig. 6): the last m layers converted. */
export interface CurvePoint {
  m: number;
  layers: number[];
  ppl: number;
  agreement: number;
  /** MoE prefill tokens/s over dense prefill tokens/s in the same run */
  relThroughput: number;
  activatedNonEmbedding: number;
}

/** One layer converted alone (Fig. 5). */
export interface SensitivityBar {
  layer: number;
  ppl: number;
  agreement: number;
}

export interface SweepResult {
  /** m = 0 is the dense model */
  curve: CurvePoint[];
  sensitivity: SensitivityBar[];
  ppl_dense: number;
}

// ----------------------------------------------------------------------------- results, storage

/** Everything a run produced; exported with its spec as one JSON file (never in the URL). */
export interface RunResults {
  capture: { tokens: number; layers: number[] } | null;
  distill: LayerDistillResult[];
  routing: RoutingProfile | null;
  evaluation: ModelMetrics | null;
  sweep: SweepResult | null;
}

/** What a new visit finds stored for a spec: lets the UI offer "resume". */
export interface ResumeInfo {
  captured: boolean;
  /** layers whose distillation finished */
  layersDone: number[];
  /** a layer stopped mid-way: the last saved step */
  partial: { layer: number; step: number; steps: number } | null;
}

export interface StoredItem {
  /** the key deleteStored takes */
  key: string;
  /** a model download (key 'model:<cache key>'), a run's captured activations or its distilled layers ('runs/<run>/capture', 'runs/<run>/checkpoint') */
  kind: 'model' | 'capture' | 'checkpoint';
  label: string;
  bytes: number;
}

export interface StorageReport {
  backend: StorageBackend;
  items: StoredItem[];
  /** navigator.storage.estimate(), when the browser has it */
  usage: number | null;
  quota: number | null;
}

// ----------------------------------------------------------------------------- whole-model training (method 'train')

/** tokens/s of the run of steps that ended at `step` (one reading of the losses) */
export interface RatePoint {
  step: number;
  tokensPerS: number;
}

/** Streamed at each reading of the losses (every train.logEvery steps), so the charts grow live. */
export interface TrainUpdate {
  /** the reading's last step (the trainer reports one point per reading); a resumed run's first update carries its stored curve */
  points: StepPoint[];
  /** held-out points not sent before */
  evals: EvalPoint[];
  rate: RatePoint | null;
}

/** `moefy train --json`'s metrics (src/train/task.ts) without the frozen-weights digest, and the tokens/s of each reading. */
export type TrainResults = Omit<TrainMetrics, 'frozen_digest'> & { rates: RatePoint[] };

/** The latest snapshot stored for a spec: where Start resumes. */
export interface TrainResume {
  step: number;
  steps: number;
  /** the run's StoredItem key, for deleteStored */
  key: string;
}

// ----------------------------------------------------------------------------- runs kept in pieces (methods 'dive', 'llama-moe-v2', 'mod')

/** What is stored of a DIVE, LLaMA-MoE v2 or MoD run: its finished pieces (affinity rows, models, constructions, variants). */
export interface PiecesResume {
  pieces: number;
  /** the run's StoredItem key, for deleteStored */
  key: string;
}

// ----------------------------------------------------------------------------- the worker API

/**
 * The LaDiMo pipeline in the worker, over the model the Model stage loaded (src/worker/pipeline.ts). The
 * UI reaches it as methods of EngineApi (src/worker/api.ts), which extends this interface:
 * `getEngine().capture(spec, Comlink.proxy(onProgress))`. Every stage takes the whole spec (the same
 * document as the URL and `moefy run`), so a stage's inputs are explicit; stages after the first need the
 * ones before (an error names the stage to run). Long stages report TaskProgress (at most 4 a second),
 * stop with an AbortError after cancel(), and save checkpoints in browser storage (OPFS, else IndexedDB,
 * else memory) keyed by the spec's result-determining fields (router.* and eval.* other than eval.window
 * are not), the loaded model's files and the data's domains, so a reload with the same three resumes.
 */
export interface PipelineApi {
  /** Calibration and evaluation text: 'builtin' reads <site>/corpus/brown/, 'files' the user's .txt files. */
  setData(source: DataSource): Promise<DataSummary>;
  /** Stored work for this spec (capture, finished and partial layers). */
  resumeInfo(spec: RunSpec): Promise<ResumeInfo>;
  /** Stage 1 (§4.2, §5.1): FFN inputs and outputs of the spec's layers over calibration text. */
  capture(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<NonNullable<RunResults['capture']>>;
  /** Stages 2–3 (§4.1–4.3): construct each layer's experts and router, then distil it; resumes. */
  distill(spec: RunSpec, onProgress?: (p: TaskProgress) => void, onUpdate?: (u: DistillUpdate) => void): Promise<LayerDistillResult[]>;
  /** Stages 4–5 (Appendix A): profile w_m per layer and per domain, decide Table 1 policies. */
  profile(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<RoutingProfile>;
  /** Overrides one layer's policy (the classroom switch) until the next profile; returns the new activated-parameter count. */
  setLayerPolicy(layer: number, policy: LayerPolicy): Promise<ActivatedParams>;
  /** Routes `text` through the converted model with the current policies. */
  routeText(text: string): Promise<TokenRouting>;
  /** Stage 6 (§5.2–5.3): dense vs MoE with the current policies; fails if router.* changed since the profile. */
  evaluate(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<ModelMetrics>;
  /** Fig. 6 and Fig. 5: the last m layers for m = 0…(converted layers), and each layer alone, each set routed under router.policy. */
  sweep(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<SweepResult>;
  /** Stage 7: a Hugging Face Qwen2-MoE folder (config.json, model.safetensors, tokenizer, moefy.json), current policies; bytes transferred. */
  exportModel(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<{ name: string; bytes: Uint8Array }[]>;
  /**
   * Method 'train': trains a fresh copy of the loaded model on the data's train.domains (the loaded model
   * stays the dense one), resuming from the latest snapshot stored for this spec, model and data.
   */
  train(spec: RunSpec, onProgress?: (p: TaskProgress) => void, onUpdate?: (u: TrainUpdate) => void): Promise<TrainResults>;
  /** The latest training snapshot stored for this spec, model and data, or null. */
  trainResumeInfo(spec: RunSpec): Promise<TrainResume | null>;
  /**
   * Method 'dive': DIVE (arXiv 2506.09351) on the loaded model and the data's calibration.domains, `moefy
   * run`'s metrics; each finished piece is stored, so a run stopped part-way resumes at the next.
   */
  dive(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<DiveMetrics>;
  /**
   * Method 'llama-moe-v2': LLaMA-MoE v2 (arXiv 2411.15708) on the loaded model and the data, `moefy run`'s
   * metrics; each finished construction is stored, so a run stopped part-way resumes at the next.
   */
  llamaMoeV2(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<V2Metrics>;
  /**
   * Method 'mod': Mixture-of-Depths ensemble tuning (arXiv 2410.13077) on the loaded model, `moefy run`'s
   * comparison of base, LoRA, MoD and MoD + LoRA on arithmetic; each finished variant kept in browser storage.
   */
  mod(spec: RunSpec, onProgress?: (p: TaskProgress) => void): Promise<ModMetrics>;
  /** What is stored of this spec's run (method 'dive', 'llama-moe-v2' or 'mod') on the loaded model and data, or null. */
  piecesResumeInfo(spec: RunSpec): Promise<PiecesResume | null>;
  /** Stops the running stage at its next step; it rejects with name 'AbortError', checkpoints kept. */
  cancel(): Promise<void>;
  storage(): Promise<StorageReport>;
  /** Deletes a StoredItem by its key; a stage that needs what it held computes it again. */
  deleteStored(key: string): Promise<void>;
}
