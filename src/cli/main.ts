// `moefy` command line. Subcommands parse their flags here and hand plain arguments to a GPU task.
import { runTask } from './host.ts';
import { nodeIO } from './io-node.ts';
import { readFile } from 'node:fs/promises';
import { parseSpec, type RunSpec } from '../state/spec.ts';
import type { SweepPoint, SweepReport } from '../methods/ladimo/sweep.ts';
import type { CheckReport } from '../ops/check.ts';
import { comparisonLines } from '../methods/llama-moe-v2/report.ts';
import { comparisonLine } from '../methods/dive/report.ts';
import { modVerdicts, wilson } from '../methods/mod/report.ts';

const USAGE = `moefy — turn dense LLaMA-family models into Mixture-of-Experts models on WebGPU

usage:
  moefy kernels check [--json] [--smoke] [--seed N] [--filter TEXT]...
      every kernel on fresh random inputs (ragged shapes included) against its float64 reference;
      exits 1 if any relative error exceeds its bound
  moefy kernels bench [--json] [--suite small|full] [--filter TEXT]... [--reps N] [--samples N]
      median GFLOP/s and GB/s per kernel and shape after warm-up; the full suite (default on a GPU) has
      GEMM 4096³ and the 7B FFN/MoE shapes, the small one (default on SwiftShader) finishes in a minute

  moefy generate --model PATH [--tokenizer PATH] [--prompt TEXT] --max-tokens N
                 [--greedy | --temperature T --top-p P --seed S] [--json]
      continue the prompt (or start from BOS); PATH: an HF folder, a .gguf, or a llama2.c .bin with
      --tokenizer tokenizer.bin
  moefy logits --model PATH [--tokenizer PATH] --ids 1,2,3 --out FILE
      raw little-endian float32 logits [T, vocab] of a prefill of those ids
  moefy ppl --model PATH [--tokenizer PATH] --text FILE [--window 256] [--max-windows N] [--json]
      perplexity of a text (one document per line, each wrapped in BOS … EOS), token count, tokens/s
  moefy export --model PATH [--tokenizer PATH] --format onnx --out FILE
      the dense model as an ONNX graph (opset 17) that onnxruntime runs

  moefy run SPEC.json [--model PATH] [--data DIR] [--json]
      every stage of the spec's method (LaDiMo: capture, construct, distill, profile, route, evaluate;
      mod: base, LoRA, MoD and MoD + LoRA tuned and scored on arithmetic; dive: FLAP statistics per
      domain, affinity matrix and clusters, pruned experts and baselines, perplexity per domain before
      retraining) and its metrics; --model and --data override the spec's sources
  moefy train SPEC.json [--model PATH] [--data DIR] [--json]
      whole-model training (method 'train'): AdamW with clipping and a warm-up + cosine schedule, LoRA
      and freezing by name, held-out loss and perplexity before and after, snapshots in checkpoint.dir
      that a rerun resumes from; moefy run of a method 'train' spec does the same
  moefy sweep SPEC.json [--model PATH] [--data DIR] [--json]
      the accuracy–throughput curve over m = 0 … L converted layers, single-layer sensitivity, and fixed
      top-k vs the adaptive router for two expert constructions, with the Pareto front marked

environment:
  MOEFY_HOST=dawn|chromium   where GPU work runs (default: Dawn in Node; headless Chromium when the
                             only adapter is SwiftShader)
  MOEFY_DAWN_FLAGS=...       extra Dawn flags, e.g. enable-dawn-features=allow_unsafe_apis
`;

interface Flags {
  positional: string[];
  bool: Set<string>;
  values: Map<string, string[]>;
}

function parse(argv: string[], valued: string[]): Flags {
  const f: Flags = { positional: [], bool: new Set(), values: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      f.positional.push(a);
      continue;
    }
    const name = a.slice(2);
    if (valued.includes(name)) {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      f.values.set(name, [...(f.values.get(name) ?? []), v]);
    } else f.bool.add(name);
  }
  return f;
}

class UsageError extends Error {}

function intFlag(f: Flags, name: string): number | undefined {
  const v = f.values.get(name)?.at(-1);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${v}'`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [group, cmd] = argv;
    if (group === 'kernels' && cmd === 'check') {
      const f = parse(argv.slice(2), ['seed', 'filter']);
      const json = f.bool.has('json');
      const log = json ? () => {} : (m: string) => console.log(m);
      const res = await runTask('kernelsCheck', { seed: intFlag(f, 'seed'), filter: f.values.get('filter'), smoke: f.bool.has('smoke') }, log);
      const failed = res.reports.filter((r: CheckReport) => !r.ok);
      if (json) console.log(JSON.stringify(res, (_, v) => (v === Infinity ? 'Infinity' : v), 2));
      else console.log(`\n${res.device}\n${res.reports.length - failed.length} passed, ${failed.length} failed`);
      return failed.length ? 1 : 0;
    }
    if (group === 'kernels' && cmd === 'bench') {
      const f = parse(argv.slice(2), ['filter', 'reps', 'samples', 'suite']);
      const json = f.bool.has('json');
      const suite = f.values.get('suite')?.at(-1);
      if (suite !== undefined && suite !== 'small' && suite !== 'full') throw new UsageError(`--suite must be small or full, got '${suite}'`);
      const res = await runTask('kernelsBench', { suite, filter: f.values.get('filter'), reps: intFlag(f, 'reps'), samples: intFlag(f, 'samples') }, json ? () => {} : (m) => console.log(m));
      if (json) console.log(JSON.stringify(res, null, 2));
      else console.log(`\n${res.suite} suite on ${res.device}${res.software ? '  (software adapter: speed here says nothing about a GPU)' : ''}`);
      return 0;
    }
    if (group === 'run' || group === 'sweep' || group === 'train') return await runCommand(group, argv.slice(1));
    if (group === 'generate' || group === 'logits' || group === 'ppl' || group === 'export') return await modelCommand(group, argv.slice(1));
    if (!group || group === 'help' || argv.includes('--help')) {
      console.log(USAGE);
      return 0;
    }
    throw new UsageError(`unknown command: ${argv.join(' ')}`);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`moefy: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`moefy: ${(e as Error)?.stack ?? e}`);
    return 1;
  }
}

function requireFlag(f: Flags, name: string): string {
  const v = f.values.get(name)?.at(-1);
  if (v === undefined) throw new UsageError(`--${name} is required`);
  return v;
}

function numFlag(f: Flags, name: string): number | undefined {
  const v = f.values.get(name)?.at(-1);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
}

async function modelCommand(cmd: 'generate' | 'logits' | 'ppl' | 'export', argv: string[]): Promise<number> {
  const f = parse(argv, ['model', 'tokenizer', 'prompt', 'max-tokens', 'temperature', 'top-p', 'seed', 'ids', 'out', 'text', 'window', 'max-windows', 'format']);
  const model = { model: requireFlag(f, 'model'), tokenizer: f.values.get('tokenizer')?.at(-1) };
  const paths = [model.model, ...(model.tokenizer ? [model.tokenizer] : [])];
  const json = f.bool.has('json');
  const log = json ? () => {} : (m: string) => console.error(m);
  if (cmd === 'generate') {
    const maxTokens = intFlag(f, 'max-tokens');
    if (maxTokens === undefined || maxTokens < 1) throw new UsageError('--max-tokens N (≥ 1) is required');
    const temperature = numFlag(f, 'temperature');
    if (f.bool.has('greedy') && temperature !== undefined) throw new UsageError('--greedy and --temperature exclude each other');
    const sample = temperature === undefined || temperature === 0 ? undefined : { temperature, topP: numFlag(f, 'top-p') ?? 1, seed: intFlag(f, 'seed') ?? 0 };
    const r = await runTask('generate', { ...model, prompt: f.values.get('prompt')?.at(-1), maxTokens, sample }, log, paths);
    console.log(json ? JSON.stringify(r, null, 2) : r.prompt + r.text);
    if (!json) log(`prefill ${r.prefillTokensPerS.toFixed(1)} tok/s, decode ${r.decodeTokensPerS.toFixed(1)} tok/s`);
    return 0;
  }
  if (cmd === 'logits') {
    const ids = requireFlag(f, 'ids').split(',').map((x) => Number(x.trim()));
    if (!ids.length || ids.some((x) => !Number.isInteger(x) || x < 0)) throw new UsageError('--ids must be comma-separated token ids');
    const out = requireFlag(f, 'out');
    const r = await runTask('logits', { ...model, ids, out }, log, [...paths, out]);
    console.log(json ? JSON.stringify(r) : `wrote float32 [${r.shape.join(', ')}] to ${r.out}`);
    return 0;
  }
  if (cmd === 'ppl') {
    const text = requireFlag(f, 'text');
    const window = intFlag(f, 'window') ?? 256;
    if (window < 2) throw new UsageError('--window must be at least 2');
    const r = await runTask('ppl', { ...model, text, window, maxWindows: intFlag(f, 'max-windows') }, log, [...paths, text]);
    console.log(json ? JSON.stringify(r, null, 2) : `perplexity ${r.ppl.toFixed(3)} over ${r.tokens} tokens (${r.windows} windows of ${window}), ${r.tokensPerS.toFixed(1)} tokens/s`);
    return 0;
  }
  const format = requireFlag(f, 'format');
  if (format !== 'onnx') throw new UsageError(`--format must be onnx, got '${format}'`);
  const out = requireFlag(f, 'out');
  const { exportOnnx } = await import('../model/export.ts');
  const bytes = await exportOnnx(await nodeIO.open(paths));
  await nodeIO.write(out, bytes);
  console.log(`wrote ${out} (${(bytes.length / 2 ** 20).toFixed(1)} MiB, ONNX opset 17)`);
  return 0;
}

async function runCommand(cmd: 'run' | 'sweep' | 'train', argv: string[]): Promise<number> {
  const f = parse(argv, ['model', 'data', 'tokenizer']);
  const [file] = f.positional;
  if (!file) throw new UsageError(`moefy ${cmd} needs a SPEC.json`);
  const text = await readFile(file, 'utf8').catch(() => {
    throw new UsageError(`${file}: cannot read the spec`);
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
  const spec = parseSpec(json, file);
  for (const k of ['model', 'data', 'tokenizer'] as const) {
    const v = f.values.get(k)?.at(-1);
    if (v !== undefined) spec[k] = v;
  }
  if (!spec.model || !spec.data) throw new UsageError(`${file}: the spec names no model or data (or pass --model and --data)`);
  const json_ = f.bool.has('json');
  // what the task may read and write: sources, and where checkpoints and the export go
  const paths = [spec.model, spec.data, ...[spec.tokenizer, spec['export.dir'], spec['checkpoint.dir']].filter(Boolean)];
  const log = (msg: string) => console.error(msg);
  if (cmd === 'train' || (cmd === 'run' && spec.method === 'train')) return await trainCommand(spec, file, json_, log);
  if (cmd === 'run' && spec.method === 'dive') return await diveCommand(spec, paths, json_, log);
  if (cmd === 'run' && spec.method === 'mod') return await modCommand(spec, paths, json_, log);
  if (cmd === 'run' && spec.method === 'llama-moe-v2') return await v2Command(spec, paths, json_, log);
  if (spec.method !== 'ladimo') {
    throw new UsageError(`${file}: method '${spec.method}' has no moefy ${cmd} (sweeps are LaDiMo's)`);
  }
  if (cmd === 'sweep') {
    const r = await runTask('sweep', spec, log, paths);
    if (json_) console.log(JSON.stringify({ spec, sweep: r }, null, 2));
    else printSweep(r);
    return 0;
  }
  const m = await runTask('run', spec, log, paths);
  if (json_) console.log(JSON.stringify({ spec, metrics: m }, null, 2));
  else {
    for (const l of m.layers) {
      console.log(`layer ${l.layer}: mse ${l.mse_before.toExponential(3)} → ${l.mse_final.toExponential(3)} (${(l.mse_before / l.mse_final).toFixed(2)}× lower), rel_err ${l.rel_err.toFixed(4)}, policy ${l.policy}, ${l.distill_seconds.toFixed(1)} s`);
    }
    const x = m.model;
    console.log(`perplexity over ${m.eval_tokens} held-out tokens of ${spec['eval.domain']}: ${x.ppl_dense.toFixed(3)} dense, ${x.ppl_moe.toFixed(3)} MoE (${(x.ppl_moe / x.ppl_dense).toFixed(3)}×); agreement ${x.agreement.toFixed(3)}; KL ${x.kl.toFixed(4)}`);
    console.log(`activated non-embedding parameters ${x.activated_non_embedding_dense} → ${x.activated_non_embedding_moe} (${(100 * (1 - x.activated_non_embedding_moe / x.activated_non_embedding_dense)).toFixed(1)}% fewer)`);
    console.log(`prefill (${m.prefill_tokens} tokens) ${x.prefill_tokens_per_s_dense.toFixed(1)} → ${x.prefill_tokens_per_s_moe.toFixed(1)} tokens/s; decode ${x.decode_tokens_per_s_dense.toFixed(1)} → ${x.decode_tokens_per_s_moe.toFixed(1)} tokens/s`);
  }
  return 0;
}

async function trainCommand(spec: RunSpec, file: string, json: boolean, log: (m: string) => void): Promise<number> {
  if (spec.method !== 'train') throw new UsageError(`${file}: method is '${spec.method}'; moefy train runs specs whose method is 'train'`);
  const paths = [spec.model, spec.data, ...[spec.tokenizer, spec['train.teacher'], spec['checkpoint.dir']].filter(Boolean)];
  const m = await runTask('train', spec, log, paths);
  if (json) console.log(JSON.stringify({ spec, metrics: m }, null, 2));
  else {
    console.log(`held-out loss ${m.loss_before.toFixed(4)} → ${m.loss_after.toFixed(4)}, perplexity ${m.ppl_before.toFixed(3)} → ${m.ppl_after.toFixed(3)} after ${m.steps} steps${m.resumed_from !== null ? ` (resumed at ${m.resumed_from})` : ''}`);
    console.log(`${m.params.trainable} of ${m.params.total} parameters trained, ${m.tokens} tokens, ${m.tokens_per_s.toFixed(1)} tokens/s on ${m.device}`);
  }
  return 0;
}

async function diveCommand(spec: RunSpec, paths: string[], json: boolean, log: (m: string) => void): Promise<number> {
  const m = await runTask('dive', spec, log, paths);
  if (json) {
    console.log(JSON.stringify({ spec, metrics: m }, null, 2));
    return 0;
  }
  // perplexities of pruned models before retraining reach the thousands: keep a space between columns
  const cell = (v: number) => ` ${v.toFixed(v >= 1000 ? 1 : 3)}`.padStart(9);
  const short = m.domains.map((_, i) => `${i}`.padStart(9));
  console.log(`DIVE, ${m.stage}`);
  console.log(`domains: ${m.domains.map((d, i) => `${i} ${d} (${m.calibration_tokens[i]} calibration, ${m.eval_tokens[i]} held-out tokens)`).join('; ')}`);
  if (m.affinity) {
    for (const [title, A] of [['perplexity P_ij (row: pruned with domain i; column: evaluated on domain j)', m.affinity.ppl], ['normalised min_i P_ij / P_ij', m.affinity.normalised], ['Pearson correlation of the normalised rows', m.affinity.correlation]] as const) {
      console.log(`${title}:\n${' '.repeat(4)}${short.join('')}`);
      A.forEach((row, i) => console.log(`${String(i).padStart(4)}${row.map(cell).join('')}`));
    }
    console.log(`average-linkage merges (distance 1 − r): ${m.affinity.merges.map((g) => `${g.a}+${g.b}@${g.distance.toFixed(3)}`).join(', ')}`);
  }
  console.log(`expert clusters (${m.clusters.source}): ${m.clusters.groups.map((g, e) => `${e}: {${g.join(', ')}}`).join('  ')}`);
  console.log(`perplexity per domain before retraining:\n${' '.repeat(42)}${short.join('')}  geomean`);
  const row = (r: { name: string; activated_ffn_share: number }, ppl: number[], geomean: number) =>
    console.log(`${`${r.name} (${(100 * r.activated_ffn_share).toFixed(1)}% FFN)`.padEnd(42)}${ppl.map(cell).join('')}  ${geomean.toFixed(3)}`);
  for (const r of m.models) row(r, r.ppl, r.ppl_geomean);
  if (m.models.some((r) => r.retrained)) {
    console.log(`perplexity per domain after retraining:\n${' '.repeat(42)}${short.join('')}  geomean`);
    for (const r of m.models) if (r.retrained) row(r, r.retrained.ppl, r.retrained.ppl_geomean);
    console.log('routing after retraining: share of each domain\'s token assignments per expert, mean over layers');
    for (const r of m.models) {
      if (!r.retrained || r.experts === 1) continue;
      console.log(`  ${r.name}:`);
      r.retrained.expert_share.forEach((layers, d) => {
        const mean = Array.from({ length: r.experts }, (_, e) => layers.reduce((s, x) => s + x[e], 0) / layers.length);
        console.log(`${String(d).padStart(6)} ${m.domains[d].padEnd(24)}${mean.map((x) => x.toFixed(2).padStart(6)).join('')}`);
      });
    }
  }
  for (const c of m.comparisons) console.log(comparisonLine(c));
  console.log(`seconds: calibration ${m.seconds.calibration.toFixed(0)}, affinity ${m.seconds.affinity.toFixed(0)}, constructions ${m.seconds.construction.toFixed(0)}, retraining ${m.seconds.retraining.toFixed(0)}`);
  return 0;
}

async function v2Command(spec: RunSpec, paths: string[], json: boolean, log: (m: string) => void): Promise<number> {
  const m = await runTask('llamaMoeV2', spec, log, paths);
  if (json) {
    console.log(JSON.stringify({ spec, metrics: m }, null, 2));
    return 0;
  }
  const k = m.construction;
  console.log(`LLaMA-MoE v2, ${k['v2.mlp']} MLP MoE in layers ${m.layers.join(', ')}: shared ${k.shared_neurons} + top-${k['v2.topK']} of ${k['v2.experts']} experts of ${k.expert_neurons} neurons, routers ${k['v2.routerInit']}`);
  const a = m.activated;
  console.log(`activated parameters: MLP ${a.mlp_moe} of ${a.mlp_dense} (${(100 * a.mlp_share).toFixed(1)}%), attention ${a.attention} of ${a.attention_dense} (${(100 * a.attention / a.attention_dense).toFixed(1)}%)`);
  console.log(`${'after'.padEnd(14)}${m.dense.map((d) => d.domain.slice(0, 12).padStart(13)).join('')}`);
  console.log(`${'dense'.padEnd(14)}${m.dense.map((d) => d.ppl.toFixed(3).padStart(13)).join('')}`);
  for (const p of m.points) console.log(`${p.after.padEnd(14)}${p.scores.map((s) => s.ppl.toFixed(3).padStart(13)).join('')}   agreement ${(p.scores.reduce((a, s) => a + s.agreement, 0) / p.scores.length).toFixed(3)}`);
  for (const s of m.stages) console.log(`stage ${s.stage} (${s.domains.join(', ')}): held-out loss ${s.loss_before.toFixed(4)} → ${s.loss_after.toFixed(4)}, ${s.steps} steps, ${s.tokens_per_s.toFixed(1)} tokens/s`);
  if (m.comparison) {
    console.log(`constructions through stage 1 (geometric-mean perplexity on the stage 1 | stage 2 domains):`);
    for (const v of m.comparison) {
      const [built, s1] = v.points;
      const attention = v.attention_top_k === null ? 'dense' : `${(100 * v.activated_attention_share).toFixed(1)}%`;
      console.log(`  ${v.name.padEnd(44)} ${(100 * v.activated_share).toFixed(1).padStart(5)}% MLP ${attention.padStart(6)} attention   construction ${built.ppl_stage1_domains.toFixed(3)} | ${built.ppl_stage2_domains.toFixed(3)}   stage 1 ${s1.ppl_stage1_domains.toFixed(3)} | ${s1.ppl_stage2_domains.toFixed(3)}`);
    }
    for (const l of comparisonLines(m.comparison)) console.log(`  ${l.text}`);
  }
  console.log(`prefill ${m.throughput.prefill_dense.toFixed(1)} → ${m.throughput.prefill_moe.toFixed(1)} tokens/s; decode ${m.throughput.decode_dense.toFixed(1)} → ${m.throughput.decode_moe.toFixed(1)} tokens/s`);
  for (const [what, load] of [['expert', m.expert_load], ['attention head-group', m.attention_load]] as const) {
    for (const r of load) console.log(`layer ${r.layer} ${what} load after the last stage: ${r.share.map((x) => `${(100 * x).toFixed(1)}%`).join(' ')}`);
  }
  if (m.export) console.log(`exported to ${m.export.dir} (Qwen2-MoE: ${m.export.files.join(', ')}); read back, its perplexity is within ${m.export.max_rel_diff.toExponential(1)} of the run's`);
  return 0;
}

async function modCommand(spec: RunSpec, paths: string[], json: boolean, log: (m: string) => void): Promise<number> {
  const m = await runTask('mod', spec, log, paths);
  if (json) {
    console.log(JSON.stringify({ spec, metrics: m }, null, 2));
    return 0;
  }
  console.log(`Mixture-of-Depths ensemble (k ${m.k}: layers ${m.layers.join(', ') || 'none'}, mix ${m.mix}, λ ${m.lambda}); ${m.problems.scored} problems of ${m.problems.source}; prose ${m.prose.domain}`);
  console.log(`${'variant'.padEnd(10)}${'trainable'.padStart(11)}${'exact match [95% CI]'.padStart(32)}${'prose ppl'.padStart(11)}${'tokens/s'.padStart(10)}`);
  for (const v of m.variants) {
    const [lo, hi] = wilson(v.correct, v.scored).map((x) => (100 * x).toFixed(1));
    console.log(`${v.variant.padEnd(10)}${String(v.params.trainable).padStart(11)}${`${v.correct}/${v.scored} ${(100 * v.accuracy).toFixed(1)}% [${lo}, ${hi}]`.padStart(32)}${v.ppl_prose.toFixed(3).padStart(11)}${v.tokens_per_s.toFixed(1).padStart(10)}`);
  }
  if (m.mod_share_of_lora_params !== null) console.log(`MoD trains ${(100 * m.mod_share_of_lora_params).toFixed(2)}% of LoRA's parameters`);
  for (const l of modVerdicts(m)) console.log(l.text);
  for (const v of m.variants) {
    if (!v.routing) continue;
    console.log(`${v.variant} router weight per token type (${v.routing.members.join(', ')}):`);
    for (const [type, r] of Object.entries(v.routing.byType)) if (r.tokens) console.log(`  ${type.padEnd(10)} ${r.mean.map((x) => x.toFixed(3)).join('  ')}  (${r.tokens} tokens)`);
  }
  return 0;
}

function printSweep(r: SweepReport): void {
  const row = (p: SweepPoint) =>
    `ppl ${p.ppl_moe.toFixed(3)} (${(p.ppl_moe / p.ppl_dense).toFixed(3)}× dense)  agreement ${p.agreement.toFixed(3)}  KL ${p.kl.toFixed(4)}  ` +
    `activated ${(100 * p.activated_non_embedding_moe / p.activated_non_embedding_dense).toFixed(1)}%  prefill ${(100 * p.prefill_tokens_per_s_moe / p.prefill_tokens_per_s_dense).toFixed(0)}% of dense  [${p.policies.join(' ')}]`;
  console.log('accuracy–throughput curve (last m layers converted):');
  for (const p of r.curve) console.log(`  m=${p.m}  ${row(p)}`);
  console.log('single-layer sensitivity:');
  for (const p of r.sensitivity) console.log(`  layer ${p.layer}  ${row(p)}`);
  console.log('routers × constructions (* on the perplexity / activated-parameter Pareto front):');
  for (const p of r.comparison) console.log(`  ${p.pareto ? '*' : ' '} ${p.construction}, ${p.router.padEnd(8)} ${row(p)}`);
  for (const v of r.adaptive) console.log(v.sentence);
}
