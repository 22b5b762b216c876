// The model blueprint every loader normalises to (llama2.c run.c's `Config`, widened to the HF fields the
// forward needs), and its reading from a Hugging Face config.json (transformers' LlamaConfig,
// MistralConfig, Qwen2Config).
import { CheckpointError } from './source.ts';

export type Arch = 'llama' | 'mistral' | 'qwen2';
export const SUPPORTED_ARCHS: readonly Arch[] = ['llama', 'mistral', 'qwen2'];

export interface ModelConfig {
  arch: Arch;
  /** hidden_size: the residual stream width */
  dim: number;
  /** intermediate_size: the SwiGLU FFN width */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  /** < nHeads means grouped-query attention (nHeads / nKvHeads query heads share one K/V head) */
  nKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxSeqLen: number;
  /** RMSNorm epsilon */
  normEps: number;
  ropeTheta: number;
  /**
   * Which dimensions RoPE rotates together. 'half': HF rotate_half, pairs (i, i + headDim/2).
   * 'interleaved': llama2.c / Meta / GGUF, pairs (2i, 2i + 1). The q/k weights are stored for one or
   * the other; the forward must use the style the checkpoint was written for.
   */
  ropeStyle: 'half' | 'interleaved';
  /** lm_head shares model.embed_tokens.weight (no lm_head.weight tensor) */
  tiedEmbeddings: boolean;
  /** q_proj / k_proj / v_proj have biases (Qwen2) */
  qkvBias: boolean;
  bosId: number;
  eosId: number;
}

const ARCH_OF_CLASS: Record<string, Arch> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

/** Reads a parsed config.json; `file` names it in errors. Throws on anything the forward cannot run. */
export function configFromHf(json: unknown, file = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError(file, 'expected a JSON object');
  }
  const c = json as Record<string, unknown>;
  const fail = (field: string, detail: string): never => {
    throw new CheckpointError(file, `${field}: ${detail}`);
  };
  const int = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      return fail(field, v === undefined ? 'missing (a positive integer is required)' : `expected a positive integer, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const num = (field: string, v: unknown, fallback: number): number => {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !(v > 0)) return fail(field, `expected a positive number, got ${JSON.stringify(v)}`);
    return v;
  };

  // ---- architecture: model_type first, then architectures[0]
  const classes = Array.isArray(c.architectures) ? (c.architectures as unknown[]) : [];
  const modelType = c.model_type;
  let arch: Arch | undefined;
  if (typeof modelType === 'string') {
    arch = SUPPORTED_ARCHS.find((a) => a === modelType);
    if (!arch) fail('model_type', `"${modelType}" is not supported (supported: ${SUPPORTED_ARCHS.join(', ')})`);
  } else {
    arch = ARCH_OF_CLASS[String(classes[0])];
    if (!arch) {
      fail('architectures', `${JSON.stringify(classes)} is not supported (supported: ${Object.keys(ARCH_OF_CLASS).join(', ')})`);
    }
  }
  if (classes.length > 0 && !classes.every((k) => String(k) in ARCH_OF_CLASS)) {
    fail('architectures', `${JSON.stringify(classes)} is not supported (supported: ${Object.keys(ARCH_OF_CLASS).join(', ')})`);
  }

  // ---- features the forward does not implement: refuse rather than compute something else
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') fail('hidden_act', `"${String(act)}" is not supported (supported: silu)`);
  if (c.mlp_bias === true) fail('mlp_bias', 'true is not supported');
  if (arch === 'llama' && c.attention_bias === true) fail('attention_bias', 'true is not supported (it also adds an o_proj bias)');
  const rope = (c.rope_parameters ?? c.rope_scaling) as Record<string, unknown> | null | undefined;
  const ropeType = rope?.rope_type ?? rope?.type ?? 'default';
  if (ropeType !== 'default') {
    fail(c.rope_parameters ? 'rope_parameters.rope_type' : 'rope_scaling', `"${String(ropeType)}" is not supported (supported: default)`);
  }

  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nKvHeads = int('num_key_value_heads', nHeads);
  if (nHeads % nKvHeads !== 0) fail('num_key_value_heads', `${nKvHeads} does not divide num_attention_heads ${nHeads}`);
  if (c.head_dim == null && dim % nHeads !== 0) fail('head_dim', `missing and hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`);
  const eos = Array.isArray(c.eos_token_id) ? c.eos_token_id[0] : c.eos_token_id; // Llama 3 lists several
  return {
    arch: arch!,
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    headDim: int('head_dim', dim / nHeads),
    vocabSize: int('vocab_size'),
    maxSeqLen: int('max_position_embeddings', 2048),
    normEps: num('rms_norm_eps', c.rms_norm_eps, 1e-6),
    ropeTheta: num('rope_theta', c.rope_theta ?? rope?.rope_theta, 10000),
    ropeStyle: 'half',
    tiedEmbeddings: c.tie_word_embeddings === true,
    qkvBias: arch === 'qwen2' || c.attention_bias === true,
    bosId: typeof c.bos_token_id === 'number' ? c.bos_token_id : 1,
    eosId: typeof eos === 'number' ? eos : 2,
  };
}
