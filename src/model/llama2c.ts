// karpathy/llama2.c legacy checkpoints (run.c read_checkpoint / memory_map_weights, "version 0" export):
// 7 int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len), then f32 arrays
// in run.c's order. vocab_size < 0 means a separate classifier (wcls) follows. run.c's matmul(xout, x, w,
// n, d) reads w as (d, n) row-major, i.e. every matrix is stored [out, in] like HF's nn.Linear.
import type { ModelConfig } from './config.ts';
import { CheckpointError, type ByteSource } from './source.ts';
import { checkTokenizer } from './tokenizer.ts';
import { readLlama2cTokenizer } from './tokenizer-spm.ts';
import { checkTensors, numel, weightIndex, type Checkpoint, type TensorEntry } from './weights.ts';

const HEADER_BYTES = 7 * 4;

/** `tokenizer` is the llama2.c tokenizer.bin for it (tok512.bin for stories260K). */
export async function openLlama2c(model: ByteSource, tokenizer: ByteSource): Promise<Checkpoint> {
  const config = await readLlama2cConfig(model);
  const tok = await readLlama2cTokenizer(tokenizer);
  checkTokenizer(tok, config);
  return { config, weights: weightIndex(config, llama2cTensors(model, config)), tokenizer: tok };
}

export async function readLlama2cConfig(src: ByteSource): Promise<ModelConfig> {
  if (src.size < HEADER_BYTES) throw new CheckpointError(src.name, `truncated: ${src.size} bytes, shorter than the 28-byte header`);
  const h = new DataView((await src.read(0, HEADER_BYTES)).slice().buffer);
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from({ length: 7 }, (_, i) => h.getInt32(4 * i, true));
  const header = `dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} n_kv_heads=${nKvHeads} vocab_size=${vocab} seq_len=${seqLen}`;
  if (dim === 0x616b3432) throw new CheckpointError(src.name, 'a llama2.c version ≥1 export (magic "ak42"); only the legacy version-0 .bin is supported');
  const ok = [dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].every((x) => x > 0) && vocab !== 0 && dim % nHeads === 0 && nHeads % nKvHeads === 0;
  if (!ok) throw new CheckpointError(src.name, `not a llama2.c checkpoint: implausible header (${header})`);
  const config: ModelConfig = {
    arch: 'llama',
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim: dim / nHeads,
    vocabSize: Math.abs(vocab),
    maxSeqLen: seqLen,
    normEps: 1e-5, // run.c rmsnorm
    ropeTheta: 10000, // run.c: 1 / powf(10000, head_dim / head_size)
    ropeStyle: 'interleaved',
    tiedEmbeddings: vocab > 0,
    qkvBias: false,
    bosId: 1,
    eosId: 2,
  };
  const end = llama2cLayout(config).end;
  if (src.size !== end) {
    throw new CheckpointError(
      src.name,
      `${src.size < end ? 'shorter' : 'longer'} than its header implies: ${header} needs ${end} bytes, the file has ${src.size}`,
    );
  }
  return config;
}

/** Byte offsets of run.c's arrays, as [HF name, HF shape] per tensor; freq_cis_real/imag are skipped. */
function llama2cLayout(c: ModelConfig): { tensors: [string, number[], number][]; end: number } {
  const L = c.nLayers;
  const kv = c.nKvHeads * c.headDim;
  const tensors: [string, number[], number][] = [];
  let at = HEADER_BYTES;
  // one run.c array: (layer, ...shape) when perLayer, mapped to model.layers.N.<hf>
  const array = (hf: string, shape: number[], perLayer: boolean) => {
    for (let l = 0; l < (perLayer ? L : 1); l++) {
      tensors.push([perLayer ? `model.layers.${l}.${hf}` : hf, shape, at]);
      at += numel(shape) * 4;
    }
  };
  array('model.embed_tokens.weight', [c.vocabSize, c.dim], false); // token_embedding_table (vocab_size, dim)
  array('input_layernorm.weight', [c.dim], true); //                   rms_att_weight (layer, dim)
  array('self_attn.q_proj.weight', [c.dim, c.dim], true); //          wq (layer, dim out, dim in)
  array('self_attn.k_proj.weight', [kv, c.dim], true); //             wk (layer, kv_dim, dim)
  array('self_attn.v_proj.weight', [kv, c.dim], true); //             wv (layer, kv_dim, dim)
  array('self_attn.o_proj.weight', [c.dim, c.dim], true); //          wo (layer, dim, dim)
  array('post_attention_layernorm.weight', [c.dim], true); //         rms_ffn_weight (layer, dim)
  array('mlp.gate_proj.weight', [c.hiddenDim, c.dim], true); //       w1 (layer, hidden_dim, dim)
  array('mlp.down_proj.weight', [c.dim, c.hiddenDim], true); //       w2 (layer, dim, hidden_dim)
  array('mlp.up_proj.weight', [c.hiddenDim, c.dim], true); //         w3 (layer, hidden_dim, dim)
  array('model.norm.weight', [c.dim], false); //                      rms_final_weight (dim)
  at += c.maxSeqLen * (c.headDim / 2) * 4 * 2; //                     freq_cis_real, freq_cis_imag (seq_len, head_size/2)
  if (!c.tiedEmbeddings) array('lm_head.weight', [c.vocabSize, c.dim], false); // wcls (vocab_size, dim)
  return { tensors, end: at };
}

function llama2cTensors(src: ByteSource, c: ModelConfig): Map<string, TensorEntry> {
  const entries = llama2cLayout(c).tensors.map(([name, shape, offset]): [string, TensorEntry] => [
    name,
    { fileName: name, source: src, offset, dtype: 'F32', shape },
  ]);
  return checkTensors(new Map(entries), c, src.name, 'the header'); // also puts them in HF (layer) order
}
