// The run spec: one JSON document that fully determines a run (model, data, method, construction,
// training, router, evaluation, seed). Like TensorFlow Playground's state.ts, every field is declared
// once in this table with its type, default and choices; the CLI (`moefy run SPEC.json`), the examples
// and the UI's URL read and validate specs through it, so no other place knows the fields.

/** `label` is what a form shows, `doc` the one-line explanation beside it (and the CLI's help). */
export type Field =
  | { key: string; label: string; type: 'number'; default: number; min?: number; max?: number; int?: boolean; doc: string }
  | { key: string; label: string; type: 'string'; default: string; choices?: readonly string[]; doc: string }
  | { key: string; label: string; type: 'boolean'; default: boolean; doc: string };

export const SPEC_VERSION = 1;

export const FIELDS = [
  { key: 'model', label: 'Model', type: 'string', default: '', doc: 'dense checkpoint: HF folder, .gguf, llama2.c .bin, URL or HF repo id' },
  { key: 'tokenizer', label: 'Tokenizer', type: 'string', default: '', doc: 'llama2.c tokenizer.bin when model is a .bin' },
  { key: 'data', label: 'Data', type: 'string', default: '', doc: "folder of <domain>.train.txt / <domain>.valid.txt (one document per line), or 'builtin:brown' for the Brown Corpus genres built in" },
  { key: 'method', label: 'Method', type: 'string', default: 'ladimo', choices: ['ladimo', 'train'], doc: 'the MoEfication method' },
  { key: 'calibration.domains', label: 'Calibration domains', type: 'string', default: 'all', doc: "comma-separated domains for calibration, or 'all'" },
  { key: 'calibration.tokens', label: 'Calibration tokens per layer', type: 'number', default: 100_000, min: 1, int: true, doc: 'FFN inputs captured per layer (LaDiMo §5.1: 100K)' },
  { key: 'construct.layers', label: 'Layers to convert', type: 'string', default: 'last:4', doc: "layers to convert: 'last:m' or a comma list like '4,5,6,7'" },
  { key: 'construct.experts', label: 'Experts per layer (N)', type: 'number', default: 8, min: 1, max: 256, int: true, doc: 'experts per MoE layer, N' },
  { key: 'construct.split', label: 'Expert construction', type: 'string', default: 'contiguous', choices: ['contiguous', 'random', 'coactivation', 'copy'], doc: 'how the FFN neurons become experts (§4.1)' },
  { key: 'construct.routerInit', label: 'Router initialisation', type: 'string', default: 'random', choices: ['random', 'kmeans'], doc: 'router initialisation' },
  { key: 'train.steps', label: 'Steps per layer', type: 'number', default: 4000, min: 0, int: true, doc: 'Adam steps per layer' },
  { key: 'train.batchTokens', label: 'Tokens per step', type: 'number', default: 512, min: 1, int: true, doc: 'tokens per step' },
  { key: 'train.lr', label: 'Learning rate', type: 'number', default: 1e-3, min: 0, doc: 'Adam learning rate' },
  { key: 'train.alpha', label: 'Balance weight α', type: 'number', default: 0.01, min: 0, doc: 'α in L = MSE + α‖L_mse‖·L_aux (§4.3)' },
  { key: 'train.topK', label: 'Top-k while training', type: 'number', default: 2, min: 1, max: 8, int: true, doc: 'experts per token while training' },
  { key: 'train.normTopK', label: 'Renormalise top-k weights', type: 'boolean', default: false, doc: 'renormalise the selected routing weights' },
  { key: 'train.heldOut', label: 'Held-out share', type: 'number', default: 0.1, min: 0, max: 0.5, doc: 'share of captured tokens held out for rel_err' },
  { key: 'train.seqLen', label: 'Sequence length', type: 'number', default: 256, min: 2, int: true, doc: "method 'train': tokens per training sequence; train.batchTokens is a multiple of it (sequences per step = batchTokens / seqLen)" },
  { key: 'train.domains', label: 'Training domains', type: 'string', default: 'all', doc: "method 'train': comma-separated domains of data to train on (their valid text gives the held-out loss), or 'all'" },
  { key: 'train.schedule', label: 'Learning-rate schedule', type: 'string', default: 'cosine', choices: ['cosine', 'constant'], doc: "method 'train': after warm-up, cosine decay to train.minLr × train.lr at the last step, or constant" },
  { key: 'train.warmup', label: 'Warm-up steps', type: 'number', default: 0, min: 0, int: true, doc: "method 'train': steps of linear learning-rate warm-up from 0" },
  { key: 'train.minLr', label: 'Final learning-rate share', type: 'number', default: 0.1, min: 0, max: 1, doc: "method 'train': the cosine schedule's floor as a share of train.lr" },
  { key: 'train.weightDecay', label: 'Weight decay', type: 'number', default: 0.01, min: 0, doc: "method 'train': AdamW's decoupled weight decay, on weight matrices (not on norms and biases)" },
  { key: 'train.clip', label: 'Gradient-norm clip', type: 'number', default: 1, min: 0, doc: "method 'train': largest global gradient L2 norm; larger gradients are scaled down to it (0: no clipping)" },
  { key: 'train.lora.rank', label: 'LoRA rank r', type: 'number', default: 0, min: 0, int: true, doc: "method 'train': rank of LoRA adapters (0: no adapters, the weights themselves train)" },
  { key: 'train.lora.alpha', label: 'LoRA α', type: 'number', default: 16, min: 0, doc: "method 'train': LoRA's α; the adapter's update is scaled by α / r" },
  { key: 'train.lora.targets', label: 'LoRA layers', type: 'string', default: 'q_proj,v_proj', doc: "method 'train': comma-separated linear layers that get adapters (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), or globs over module names like 'model.layers.7.*'" },
  { key: 'train.only', label: 'Train only', type: 'string', default: '', doc: "method 'train': comma-separated globs of the parameters that train ('*norm*', '*router*'); empty: all of them, or only the LoRA adapters when train.lora.rank > 0" },
  { key: 'train.freeze', label: 'Freeze', type: 'string', default: '', doc: "method 'train': comma-separated globs of parameters kept fixed ('model.embed_tokens.*')" },
  { key: 'train.recompute', label: 'Activation checkpointing', type: 'boolean', default: false, doc: "method 'train': recompute each decoder layer's forward in the backward instead of storing its activations" },
  { key: 'train.teacher', label: 'Teacher model', type: 'string', default: '', doc: "method 'train': a checkpoint (same vocabulary) whose next-token distribution the model is distilled towards; empty: none" },
  { key: 'train.klWeight', label: 'Distillation weight', type: 'number', default: 0.5, min: 0, max: 1, doc: "method 'train': with a teacher the objective is (1 − w)·cross-entropy + w·KL(teacher ‖ model)" },
  { key: 'train.evalEvery', label: 'Held-out loss every', type: 'number', default: 100, min: 0, int: true, doc: "method 'train': steps between held-out losses over eval.maxWindows windows (0: before and after training only)" },
  { key: 'train.logEvery', label: 'Read losses every', type: 'number', default: 10, min: 1, int: true, doc: "method 'train': steps recorded between readings of the losses (each one waits for the GPU)" },
  { key: 'train.checkpointEvery', label: 'Snapshot every', type: 'number', default: 0, min: 0, int: true, doc: "method 'train': steps between snapshots in checkpoint.dir (0: at the end only); the same spec resumes from the latest" },
  { key: 'router.policy', label: 'Routing policy', type: 'string', default: 'adaptive', choices: ['adaptive', 'top1', 'top2', 'top3'], doc: 'inference routing: Table 1 adaptive router or a fixed top-k' },
  { key: 'router.pU', label: 'p_u (uneven share)', type: 'number', default: 0.25, min: 0, max: 1, doc: 'p_u: share of extremely uneven routing distributions (Appendix A)' },
  { key: 'router.pE', label: 'p_e (even share)', type: 'number', default: 0.25, min: 0, max: 1, doc: 'p_e: share of extremely even routing distributions (Appendix A)' },
  { key: 'router.profileTokens', label: 'Profiling tokens', type: 'number', default: 8192, min: 1, int: true, doc: 'calibration tokens over which w_m is profiled (Appendix A profiles a sample of the calibration text)' },
  { key: 'eval.domain', label: 'Evaluation domain', type: 'string', default: 'brown-news', doc: 'held-out domain for perplexity, agreement and KL' },
  { key: 'eval.window', label: 'Window (tokens)', type: 'number', default: 256, min: 2, int: true, doc: 'tokens per evaluation window' },
  { key: 'eval.maxWindows', label: 'Windows at most', type: 'number', default: 64, min: 1, int: true, doc: 'evaluation windows at most' },
  { key: 'eval.throughputTokens', label: 'Prefill tokens for tokens/s', type: 'number', default: 2048, min: 1, int: true, doc: 'prefill length for tokens/s' },
  { key: 'eval.decodeTokens', label: 'Decode tokens for tokens/s', type: 'number', default: 64, min: 0, int: true, doc: 'decode steps for tokens/s' },
  { key: 'checkpoint.dir', label: 'Checkpoint folder', type: 'string', default: '', doc: 'save captured activations and distilled layers here so an interrupted run resumes (empty: no checkpoints)' },
  { key: 'export.dir', label: 'Export folder', type: 'string', default: '', doc: 'write the MoE model here as a Hugging Face Qwen2-MoE folder with a moefy.json sidecar (empty: no export)' },
  { key: 'seed', label: 'Seed', type: 'number', default: 0, min: 0, int: true, doc: 'seeds every random choice of the run' },
] as const satisfies readonly Field[];

type FieldOf<K> = Extract<(typeof FIELDS)[number], { key: K }>;
export type SpecKey = (typeof FIELDS)[number]['key'];
type ValueOf<F> = F extends { type: 'number' } ? number : F extends { type: 'boolean' } ? boolean : F extends { choices: readonly (infer C)[] } ? C : string;
export type RunSpec = { [K in SpecKey]: ValueOf<FieldOf<K>> };

export class SpecError extends Error {
  constructor(readonly where: string, detail: string) {
    super(`${where}: ${detail}`);
    this.name = 'SpecError';
  }
}

export function defaultSpec(): RunSpec {
  return Object.fromEntries(FIELDS.map((f) => [f.key, f.default])) as RunSpec;
}

/** A spec from JSON (flat "a.b" keys or nested objects); unknown keys and bad values are errors naming the key. */
export function parseSpec(json: unknown, where = 'spec'): RunSpec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SpecError(where, 'a run spec must be a JSON object');
  const flat = flatten(json as Record<string, unknown>);
  const version = flat.version ?? SPEC_VERSION;
  delete flat.version;
  if (version !== SPEC_VERSION) throw new SpecError(where, `version ${String(version)} is not supported (this build reads version ${SPEC_VERSION})`);
  const spec = defaultSpec() as Record<string, unknown>;
  for (const [key, value] of Object.entries(flat)) {
    const f = (FIELDS as readonly Field[]).find((x) => x.key === key);
    if (!f) throw new SpecError(where, `unknown field '${key}' (known: ${FIELDS.map((x) => x.key).join(', ')})`);
    spec[key] = check(f, value, where);
  }
  return spec as RunSpec;
}

/** The spec as nested JSON with its version, the form examples/*.json are written in. */
export function specToJson(spec: RunSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { version: SPEC_VERSION };
  for (const f of FIELDS) {
    const path = f.key.split('.');
    let o = out;
    for (const p of path.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[path.at(-1)!] = spec[f.key];
  }
  return out;
}

function check(f: Field, v: unknown, where: string): unknown {
  const bad = (what: string) => new SpecError(where, `${f.key} ${what}, got ${JSON.stringify(v)}`);
  if (f.type === 'boolean') {
    if (typeof v !== 'boolean') throw bad('must be true or false');
    return v;
  }
  if (f.type === 'string') {
    if (typeof v !== 'string') throw bad('must be a string');
    if (f.choices && !f.choices.includes(v)) throw bad(`must be one of ${f.choices.join(', ')}`);
    return v;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad('must be a finite number');
  if (f.int && !Number.isInteger(v)) throw bad('must be an integer');
  if (f.min !== undefined && v < f.min) throw bad(`must be ≥ ${f.min}`);
  if (f.max !== undefined && v > f.max) throw bad(`must be ≤ ${f.max}`);
  return v;
}

function flatten(o: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) Object.assign(out, flatten(v as Record<string, unknown>, key));
    else out[key] = v;
  }
  return out;
}

/** Resolves 'last:m' or '3,5,7' against the model's layer count. */
export function specLayers(spec: RunSpec, nLayers: number): number[] {
  const s = spec['construct.layers'].trim();
  const last = /^last:(\d+)$/.exec(s);
  const layers = last ? Array.from({ length: Number(last[1]) }, (_, i) => nLayers - Number(last[1]) + i) : s.split(',').map((x) => Number(x.trim()));
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= nLayers) throw new SpecError('construct.layers', `'${s}' names layer ${l}, outside 0..${nLayers - 1}`);
  }
  return [...new Set(layers)].sort((a, b) => a - b);
}
