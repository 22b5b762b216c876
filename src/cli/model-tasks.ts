// GPU tasks on dense models: generate, logits, perplexity. Host-agnostic like tasks.ts: files come
// through HostIO, results go back as plain JSON.
import type { Gpu } from '../gpu/device.ts';
import { Rng } from '../data/rng.ts';
import { openCheckpoint } from '../model/load.ts';
import { readText } from '../model/source.ts';
import { LlamaModel } from '../model/llama.ts';
import { generate as generateTokens } from '../model/generate.ts';
import { evalWindows, perplexity, type PerplexityResult } from '../eval/perplexity.ts';
import type { Checkpoint } from '../model/weights.ts';
import type { HostIO } from './io.ts';
import type { Progress } from './tasks.ts';

export interface ModelArgs {
  /** An HF folder, a .gguf, or a llama2.c .bin (then `tokenizer` names its tokenizer.bin). */
  model: string;
  tokenizer?: string;
}

async function load(gpu: Gpu, args: ModelArgs, io: HostIO, progress: Progress): Promise<{ ckpt: Checkpoint; model: LlamaModel }> {
  const files = await io.open(args.tokenizer ? [args.model, args.tokenizer] : [args.model]);
  const ckpt = await openCheckpoint(files);
  const t0 = performance.now();
  const model = await LlamaModel.load(gpu, ckpt.weights);
  const mb = (n: number) => (n / 2 ** 20).toFixed(1);
  progress(`loaded ${args.model} in ${((performance.now() - t0) / 1000).toFixed(1)} s: weights ${mb(model.memoryBytes.weights)} MiB, run state ${mb(model.memoryBytes.runState)} MiB on ${gpu.describe()}`);
  return { ckpt, model };
}

export interface GenerateArgs extends ModelArgs {
  prompt?: string;
  maxTokens: number;
  /** Absent: greedy. */
  sample?: { temperature: number; topP: number; seed: number };
}

export async function generate(gpu: Gpu, args: GenerateArgs, progress: Progress, io: HostIO) {
  const { ckpt, model } = await load(gpu, args, io, progress);
  const tok = ckpt.tokenizer;
  const prompt = args.prompt ? tok.encode(args.prompt, { bos: true }) : [tok.bosId];
  const sampler = args.sample
    ? { kind: 'sample' as const, temperature: args.sample.temperature, topP: args.sample.topP, rng: new Rng(args.sample.seed) }
    : { kind: 'greedy' as const };
  const r = await generateTokens(model, prompt, { maxTokens: args.maxTokens, sampler, stopId: tok.eosId });
  model.release();
  return { prompt: args.prompt ?? '', text: tok.decode(r.ids), ids: r.ids, prefillTokensPerS: r.prefillTokensPerS, decodeTokensPerS: r.decodeTokensPerS };
}

export interface LogitsArgs extends ModelArgs {
  ids: number[];
  out: string;
}

/** Writes raw little-endian float32 logits [T, vocab] for the given ids (a prefill from position 0). */
export async function logits(gpu: Gpu, args: LogitsArgs, progress: Progress, io: HostIO) {
  const { ckpt, model } = await load(gpu, args, io, progress);
  const V = ckpt.config.vocabSize;
  const out = new Float32Array(args.ids.length * V);
  for (let i = 0; i < args.ids.length; i += model.chunk) {
    const part = await model.forward(args.ids.slice(i, i + model.chunk)).read();
    out.set(part as Float32Array, i * V);
  }
  model.release();
  await io.write(args.out, new Uint8Array(out.buffer));
  return { shape: [args.ids.length, V], out: args.out };
}

export interface PplArgs extends ModelArgs {
  text: string;
  window: number;
  maxWindows?: number;
}

export async function ppl(gpu: Gpu, args: PplArgs, progress: Progress, io: HostIO): Promise<PerplexityResult & { text: string }> {
  const { ckpt, model } = await load(gpu, args, io, progress);
  const [textFile] = await io.open([args.text]);
  const windows = evalWindows(await readText(textFile), ckpt.tokenizer, args.window, args.maxWindows);
  if (!windows.length) throw new Error(`${args.text}: shorter than one ${args.window}-token window`);
  const t0 = performance.now();
  let last = t0;
  const r = await perplexity(model, windows, (d, n) => {
    const now = performance.now();
    if (now - last < 5000 && d < n) return;
    last = now;
    const eta = ((now - t0) / d) * (n - d);
    progress(`window ${d}/${n}, ETA ${(eta / 1000).toFixed(0)} s`);
  });
  model.release();
  return { ...r, text: args.text };
}
