// The run spec: one JSON document that fully determines a run (model, data, method, construction,
// training, router, evaluation, seed). Like TensorFlow Playground's state.ts, every field is declared
// once in this table with its type, default and choices; the CLI (`moefy run SPEC.json`), the examples
// and the UI's URL read and validate specs through it, so no other place knows the fields.

/** `label` is what a form shows, `doc` the one-line explanation beside it (and the CLI's help). */
export type Field =
  | { key: string; label: string; type: 'number'; default: number; min?: number; max?: number; int?: boolean; doc: string }
  | { key: string; label: string; type: 'string'; default: string; choices?: readonly string[]; doc: string }
  | { key: string; label: string; type: 'boolean'; default: boolean; doc: string };

export const SPEC_VERSION = 2;

/**
 * Defaults as they were in an earlier version, where they have changed since: a spec file or link leaves
 * fields at its version's defaults out, so reading an older one restores them and it still means what it
 * meant. Version 2 renormalises the top-k weights by default (train.normTopK: docs/perf.md says why).
 */
const EARLIER_DEFAULTS: Record<number, Partial<Record<SpecKey, unknown>>> = {
  1: { 'train.normTopK': false },
};

export const FIELDS = [
  { key: 'model', label: 'Model', type: 'string', default: 'public/demo-model', doc: "dense checkpoint: HF folder, .gguf, llama2.c .bin, URL or HF repo id (default: the workbench's demo model, a path from the repo root)" },
  { key: 'tokenizer', label: 'Tokenizer', type: 'string', default: '', doc: 'llama2.c tokenizer.bin when model is a .bin' },
  { key: 'data', label: 'Data', type: 'string', default: '', doc: "folder of <domain>.train.txt / <domain>.valid.txt (one document per line), or 'builtin:brown' for the Brown Corpus genres built in" },
  { key: 'method', label: 'Method', type: 'string', default: 'ladimo', choices: ['ladimo', 'train', 'dive', 'mod', 'llama-moe-v2'], doc: "the method ('mod': Mixture-of-Depths ensemble tuning, arXiv 2410.13077, compared with LoRA on arithmetic; 'llama-moe-v2': attention and residual MLP experts, arXiv 2411.15708)" },
  { key: 'calibration.domains', label: 'Calibration domains', type: 'string', default: 'all', doc: "comma-separated domains for calibration, or 'all'" },
  { key: 'calibration.tokens', label: 'Calibration tokens per layer', type: 'number', default: 100_000, min: 1, int: true, doc: 'FFN inputs captured per layer (LaDiMo §5.1: 100K)' },
  { key: 'construct.layers', label: 'Layers to convert', type: 'string', default: 'last:4', doc: "layers to convert: 'last:m' or a comma list like '4,5,6,7'" },
  { key: 'construct.experts', label: 'Experts per layer (N)', type: 'number', default: 8, min: 1, max: 256, int: true, doc: 'experts per MoE layer, N' },
  { key: 'construct.split', label: 'Expert construction', type: 'string', default: 'contiguous', choices: ['contiguous', 'random', 'coactivation', 'copy'], doc: 'how the FFN neurons become experts (§4.1)' },
  { key: 'construct.routerInit', label: 'Router initialisation', type: 'string', default: 'random', choices: ['random', 'kmeans'], doc: 'router initialisation' },
  { key: 'train.steps', label: 'Steps', type: 'number', default: 4000, min: 0, int: true, doc: "optimizer steps: per MoE layer in LaDiMo's distillation, of the whole model in method 'train'" },
  { key: 'train.batchTokens', label: 'Tokens per step', type: 'number', default: 512, min: 1, int: true, doc: "tokens per optimizer step (captured tokens in LaDiMo; in method 'train', whole sequences of train.seqLen)" },
  { key: 'train.lr', label: 'Learning rate', type: 'number', default: 1e-3, min: 0, doc: "Adam's learning rate (AdamW's peak learning rate in method 'train')" },
  { key: 'train.alpha', label: 'Balance weight α', type: 'number', default: 0.01, min: 0, doc: 'α in L = MSE + α‖L_mse‖·L_aux (§4.3)' },
  { key: 'train.topK', label: 'Top-k while training', type: 'number', default: 2, min: 1, max: 8, int: true, doc: 'experts per token while training' },
  { key: 'train.normTopK', label: 'Renormalise top-k weights', type: 'boolean', default: true, doc: "renormalise the selected routing weights to sum to 1 (HF norm_topk_prob, as Mixtral). Without it the block's output carries only its k experts' share of the softmax, so distillation pays the router to pile that share onto a few experts and the others starve (docs/perf.md)" },
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
  { key: 'train.checkpointEvery', label: 'Snapshot every', type: 'number', default: 0, min: 0, int: true, doc: "methods 'train' and 'llama-moe-v2' (per post-training stage): steps between snapshots in checkpoint.dir (0: at the end only; a cancelled run saves one too); the same spec resumes from the latest" },
  { key: 'router.policy', label: 'Routing policy', type: 'string', default: 'adaptive', choices: ['adaptive', 'top1', 'top2', 'top3'], doc: 'inference routing: Table 1 adaptive router or a fixed top-k' },
  { key: 'router.pU', label: 'p_u (uneven share)', type: 'number', default: 0.25, min: 0, max: 1, doc: 'p_u: share of extremely uneven routing distributions (Appendix A)' },
  { key: 'router.pE', label: 'p_e (even share)', type: 'number', default: 0.25, min: 0, max: 1, doc: 'p_e: share of extremely even routing distributions (Appendix A)' },
  { key: 'router.profileTokens', label: 'Profiling tokens', type: 'number', default: 8192, min: 1, int: true, doc: 'calibration tokens over which w_m is profiled (Appendix A profiles a sample of the calibration text)' },
  { key: 'dive.keptRatio', label: 'Kept FFN share', type: 'number', default: 0.5, min: 0.001, max: 1, doc: "method 'dive': share of each FFN's channels activated per token: the FLAP baseline keeps it, a k/N MoE's experts keep 1/k of it each (DIVE compares at equal activated parameters)" },
  { key: 'dive.experts', label: 'Experts (N)', type: 'number', default: 8, min: 1, max: 256, int: true, doc: "method 'dive': experts per layer, one per domain cluster (at most the number of calibration domains)" },
  { key: 'dive.topK', label: 'Configurations k/N', type: 'string', default: '1,2', doc: "method 'dive': comma-separated experts per token k of the MoE configurations built (DIVE's 1/8 and 2/8)" },
  { key: 'dive.calibTokens', label: 'Calibration tokens per domain', type: 'number', default: 4096, min: 2, int: true, doc: "method 'dive': tokens of each domain's training text over which FLAP's channel statistics are taken" },
  { key: 'dive.evalWindows', label: 'Evaluation windows per domain', type: 'number', default: 4, min: 1, int: true, doc: "method 'dive': held-out windows (eval.window tokens) per domain for every perplexity, the affinity matrix's included" },
  { key: 'dive.clusters', label: 'Expert clusters', type: 'string', default: 'mined', choices: ['mined', 'labels'], doc: "method 'dive': 'mined': domain affinity mining (prune with each domain, evaluate on each, cluster) groups the domains into experts, and the ablation by labels is built beside it; 'labels': domains grouped by name, no mining" },
  { key: 'dive.routerNoise', label: 'Router noise ε', type: 'number', default: 0.01, min: 0, doc: "method 'dive': noise floor of the fresh noisy top-k routers (LLaMA-MoE's noise_epsilon), used when they are trained; perplexity before retraining is measured without noise" },
  { key: 'dive.stage1Steps', label: 'Stage 1 steps (routers)', type: 'number', default: 200, min: 0, int: true, doc: "method 'dive': retraining stage 1, routers only with every expert active through softmax(z / t) (train.* sets the loop); 0 with dive.stage2Steps 0: no retraining" },
  { key: 'dive.stage2Steps', label: 'Stage 2 steps (expert LoRA + norms)', type: 'number', default: 200, min: 0, int: true, doc: "method 'dive': retraining stage 2, top-k routing, LoRA (dive.loraRank, train.lora.alpha) on every expert projection and the RMSNorm weights; the FLAP baseline gets this stage alone" },
  { key: 'dive.temperature', label: 'Stage 1 temperatures t', type: 'string', default: '0.05,0.5', doc: "method 'dive': stage 1's softmax temperature for each k of dive.topK, in its order (the paper: 0.05 for 1 of 8, 0.5 for 2 of 8)" },
  { key: 'dive.loraRank', label: 'Stage 2 LoRA rank', type: 'number', default: 8, min: 1, int: true, doc: "method 'dive': rank of stage 2's adapters on the experts' gate, up and down projections" },
  { key: 'mod.k', label: 'Late layers k', type: 'number', default: 3, min: 0, max: 15, int: true, doc: "method 'mod': late layers before the final one whose predictions join the ensemble (each through its own RMSNorm and the shared LM head)" },
  { key: 'mod.mix', label: 'Mix predictions in', type: 'string', default: 'prob', choices: ['prob', 'logit'], doc: "method 'mod': the router mixes the members' next-token probabilities, or their logits before one softmax" },
  { key: 'mod.lambda', label: 'Distillation weight λ', type: 'number', default: 0.5, min: 0, doc: "method 'mod': loss = CE(mixed prediction) + λ·Σ_i KL(p_final ‖ p_i), the final layer a stop-gradient teacher (§2.3)" },
  { key: 'mod.initFinal', label: 'Router start on the final layer', type: 'number', default: 0.5, min: 0.01, max: 0.99, doc: "method 'mod': the router's initial weight on the final layer at every token (W_g starts at zero; its bias row sets this share, the late layers split the rest)" },
  { key: 'mod.variants', label: 'Variants compared', type: 'string', default: 'base,lora,mod,mod+lora', doc: "method 'mod': comma-separated variants, each trained with the same budget and seed: base (untuned), lora (LoRA, train.lora.*), mod (norms + router), mod+lora" },
  { key: 'mod.problems', label: 'Arithmetic problems', type: 'string', default: 'data', choices: ['data', 'builtin'], doc: "method 'mod': word problems from data's <mod.domain>.train/.valid.txt, or from the seeded built-in generator of the same five kinds" },
  { key: 'mod.domain', label: 'Arithmetic domain', type: 'string', default: 'math', doc: "method 'mod': the data domain holding the arithmetic word problems (mod.problems 'data')" },
  { key: 'mod.evalProblems', label: 'Problems scored', type: 'number', default: 960, min: 1, int: true, doc: "method 'mod': held-out problems scored by exact match of the greedy answer after '=' (the first ones of the valid text)" },
  // ---- LLaMA-MoE v2 (arXiv 2411.15708), method 'llama-moe-v2': construction (src/methods/llama-moe-v2/); converts construct.layers
  { key: 'v2.mlp', label: 'MLP MoE kind', type: 'string', default: 'residual', choices: ['vanilla', 'residual'], doc: "method 'llama-moe-v2', MLP MoE: 'vanilla' partitions the FFN neurons into the routed experts; 'residual' first sets the most-used neurons aside as an always-on shared expert" },
  { key: 'v2.experts', label: 'Routed experts (N)', type: 'number', default: 6, min: 1, max: 256, int: true, doc: "method 'llama-moe-v2': routed experts per MLP MoE layer" },
  { key: 'v2.topK', label: 'Routed experts per token', type: 'number', default: 2, min: 1, max: 8, int: true, doc: "method 'llama-moe-v2': routed experts per token (default: shared 1/4 + 2 of 6 experts of the rest = 50% of the dense FFN's parameters)" },
  { key: 'v2.sharedRatio', label: 'Shared expert share', type: 'number', default: 0.25, min: 0, max: 1, doc: "method 'llama-moe-v2', residual: share of the FFN's neurons in the shared expert (rounded; at most I − N)" },
  { key: 'v2.sharedBy', label: 'Shared neurons by', type: 'string', default: 'frequency', choices: ['frequency', 'magnitude'], doc: "method 'llama-moe-v2', residual: rank neurons by how often |a| exceeds the layer's mean |a| over the calibration tokens, or by mean |a| (a = the down_proj input)" },
  { key: 'v2.partition', label: 'Neuron partition', type: 'string', default: 'cluster', choices: ['cluster', 'random'], doc: "method 'llama-moe-v2': routed experts from balanced k-means of the neurons' gate_proj rows, or a seeded random split" },
  { key: 'v2.routerInit', label: 'Router initialisation', type: 'string', default: 'hidden-kmeans', choices: ['hidden-kmeans', 'random-features', 'random'], doc: "method 'llama-moe-v2', router initialisation: router rows from k-means centroids of the layer's input hidden states, from randomly drawn hidden states, or random (the baseline)" },
  { key: 'v2.routerTokens', label: 'Hidden states for router init', type: 'number', default: 4096, min: 1, int: true, doc: "method 'llama-moe-v2': captured hidden states (the first ones) the router initialisation clusters or draws from" },
  { key: 'v2.balance', label: 'Load-balancing coefficient', type: 'number', default: 0.01, min: 0, doc: "method 'llama-moe-v2': α of the layer-wise load-balancing loss α·L_aux added per MoE layer in post-training" },
  { key: 'v2.attention', label: 'Attention MoE', type: 'boolean', default: false, doc: "method 'llama-moe-v2': also turn attention into experts, one per KV group with its query heads" },
  { key: 'v2.attentionTopK', label: 'Head groups per token', type: 'number', default: 2, min: 1, max: 8, int: true, doc: "method 'llama-moe-v2', attention MoE: KV head groups each token computes" },
  { key: 'v2.stage1Domains', label: 'Stage 1 text', type: 'string', default: 'brown-*', doc: "method 'llama-moe-v2', post-training stage 1 (general text): comma-separated domains of data, '*' matching any run of characters" },
  { key: 'v2.stage2Domains', label: 'Stage 2 text', type: 'string', default: 'math,code', doc: "method 'llama-moe-v2', post-training stage 2 (specialised text): comma-separated domains of data, '*' matching any run of characters" },
  { key: 'v2.stage2Replay', label: 'Stage 1 share in stage 2', type: 'number', default: 0, min: 0, max: 0.9, doc: "method 'llama-moe-v2': share of stage 2's training text taken from stage 1's (0: specialised text only)" },
  { key: 'v2.stage1Steps', label: 'Stage 1 steps', type: 'number', default: 200, min: 0, int: true, doc: "method 'llama-moe-v2': optimizer steps of post-training stage 1 (train.* sets the loop, the LoRA adapters and what trains)" },
  { key: 'v2.stage2Steps', label: 'Stage 2 steps', type: 'number', default: 200, min: 0, int: true, doc: "method 'llama-moe-v2': optimizer steps of post-training stage 2" },
  { key: 'v2.evalWindows', label: 'Evaluation windows per domain', type: 'number', default: 4, min: 1, int: true, doc: "method 'llama-moe-v2': held-out windows (eval.window tokens) of each stage domain, scored after construction and after each stage" },
  { key: 'v2.compare', label: 'Compare constructions', type: 'boolean', default: false, doc: "method 'llama-moe-v2': also run, through stage 1 at the same budget, the other MLP kind at matched activated neurons, random routers (k-means when v2.routerInit is random) and, with v2.attention, dense attention" },
  // ---- end LLaMA-MoE v2
  { key: 'eval.domain', label: 'Evaluation domains', type: 'string', default: 'brown-news', doc: "held-out text for perplexity, agreement and KL: a domain, comma-separated domains, or 'all' (eval.maxWindows windows in all, taken round-robin across them)" },
  { key: 'eval.window', label: 'Window (tokens)', type: 'number', default: 256, min: 2, int: true, doc: 'tokens per evaluation window' },
  { key: 'eval.maxWindows', label: 'Windows at most', type: 'number', default: 64, min: 1, int: true, doc: 'evaluation windows at most' },
  { key: 'eval.throughputTokens', label: 'Prefill tokens for tokens/s', type: 'number', default: 2048, min: 1, int: true, doc: 'prefill length for tokens/s' },
  { key: 'eval.decodeTokens', label: 'Decode tokens for tokens/s', type: 'number', default: 64, min: 0, int: true, doc: 'decode steps for tokens/s' },
  { key: 'checkpoint.dir', label: 'Checkpoint folder', type: 'string', default: '', doc: 'save checkpoints here so an interrupted run resumes (LaDiMo: captured activations and distilled layers; method \'dive\': each finished affinity row and model; method \'llama-moe-v2\': each finished construction, and the snapshots of the stage under way; empty: no checkpoints)' },
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

/** The defaults a spec of `version` was written against: the oldest change at or after it wins. */
export function defaultsOf(version: number): RunSpec {
  const spec = defaultSpec();
  for (let v = SPEC_VERSION; v >= version; v--) Object.assign(spec, EARLIER_DEFAULTS[v]);
  return spec;
}

/** A spec from JSON (flat "a.b" keys or nested objects); unknown keys and bad values are errors naming the key. */
export function parseSpec(json: unknown, where = 'spec'): RunSpec {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SpecError(where, 'a run spec must be a JSON object');
  const flat = flatten(json as Record<string, unknown>);
  const version = flat.version ?? SPEC_VERSION;
  delete flat.version;
  if (!Number.isInteger(version) || (version as number) < 1 || (version as number) > SPEC_VERSION) {
    throw new SpecError(where, `version ${String(version)} is not supported (this build reads versions 1 to ${SPEC_VERSION})`);
  }
  const spec = defaultsOf(version as number) as Record<string, unknown>;
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
