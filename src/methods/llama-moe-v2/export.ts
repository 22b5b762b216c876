// LLaMA-MoE v2 (arXiv 2411.15708) scope 8, export: the post-trained model with MLP MoE layers as a Hugging
// Face Qwen2-MoE folder that stock transformers loads (src/model/qwen2moe.ts): the routers and experts as
// trained, a residual MoE's shared expert as Qwen2-MoE's shared_expert (its gate weight 0 and down_proj
// doubled, so it contributes fully), and every other weight as training left it (full-parameter training
// moves attention, norms and embeddings too); an attention MoE's routers go in too, listed in moefy.json
// (this project's format: stock transformers would run that attention dense). The folder is then read back from memory and must score
// each held-out domain as the run did: a wrong tensor name or layout cannot pass unnoticed.
import type { Tensor } from '../../gpu/tensor.ts';
import type { LlamaModel } from '../../model/llama.ts';
import { exportQwen2Moe, openQwen2Moe, type ExportAttentionLayer, type ExportedFile, type ExportMoeLayer } from '../../model/qwen2moe.ts';
import { bytesSource, type ByteSource, baseName } from '../../model/source.ts';
import { perplexity } from '../../eval/perplexity.ts';
import { specToJson, type RunSpec } from '../../state/spec.ts';
import { llamaParams } from '../../train/params.ts';
import type { ConstructedLayer } from './build.ts';

const read = async (t: Tensor) => (await t.read()) as Float32Array;

/** The folder's files: `student`'s weights with `built`'s layers as Qwen2-MoE blocks, top-v2.topK, and the attention routers (top-v2.attentionTopK, s = G). */
export async function exportV2(
  student: LlamaModel, built: ReadonlyMap<number, ConstructedLayer>, attnRouters: ReadonlyMap<number, Tensor>, spec: RunSpec, sourceFiles: readonly ByteSource[],
): Promise<ExportedFile[]> {
  const c = student.config;
  const weights = new Map<string, Float32Array>();
  for (const p of llamaParams(student.weights, c.tiedEmbeddings).all()) weights.set(p.name, await read(p.value));
  const layers = new Map<number, ExportMoeLayer>();
  for (const [l, L] of built) {
    const w = L.weights;
    const { nExperts: E, expertDim: Ie } = L.moe.experts;
    layers.set(l, {
      router: await read(w.router), gate_proj: await read(w.gate_proj), up_proj: await read(w.up_proj), down_proj: await read(w.down_proj),
      E, Ie, policy: { topK: spec['v2.topK'] }, normTopK: false,
      shared: w.shared && { S: w.shared.gate_proj.shape[0], gate_proj: await read(w.shared.gate_proj), up_proj: await read(w.shared.up_proj), down_proj: await read(w.shared.down_proj) },
    });
  }
  const tokenizer = await Promise.all(
    sourceFiles.filter((f) => ['tokenizer.json', 'tokenizer_config.json'].includes(baseName(f.name))).map(async (f) => ({ name: baseName(f.name), bytes: await f.read(0, f.size) })),
  );
  const attention = new Map<number, ExportAttentionLayer>();
  for (const [l, r] of attnRouters) attention.set(l, { router: await read(r), topK: spec['v2.attentionTopK'], scale: c.nKvHeads });
  return exportQwen2Moe(c, weights, layers, { spec: specToJson(spec), tokenizer, attention });
}

/** Perplexity of the exported folder, read back from memory, on each set of windows. */
export async function exportedPerplexity(student: LlamaModel, files: readonly ExportedFile[], evalSets: readonly number[][][]): Promise<number[]> {
  const opened = await openQwen2Moe(files.map((f) => bytesSource(`export/${f.name}`, f.bytes)), student.gpu);
  try {
    const out: number[] = [];
    for (const windows of evalSets) out.push((await perplexity(opened.model, windows)).ppl);
    return out;
  } finally {
    opened.release();
  }
}
