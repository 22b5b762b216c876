// LaDiMo end to end on a real tiny model (stories260K) with a CI budget: every stage runs, the distilled
// blocks beat their untrained selves on held-out rows, and the same spec and seed give the same metrics
// twice (throughput aside, which is a measurement of time).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { parseSpec } from '../src/state/spec.ts';
import type { RunMetrics } from '../src/methods/ladimo/run.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;

function spec() {
  const s = parseSpec(JSON.parse(readFileSync(`${root}/examples/ladimo-stories260K-tiny.json`, 'utf8')));
  return { ...s, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus`, 'train.steps': 40, 'eval.maxWindows': 2 };
}

async function run(exportDir = ''): Promise<RunMetrics> {
  const s = { ...spec(), 'export.dir': exportDir };
  return runTask('run', s, () => {}, [s.model, s.tokenizer, s.data, ...(exportDir ? [exportDir] : [])]);
}

const timing = new Set(['prefill_tokens_per_s_dense', 'prefill_tokens_per_s_moe', 'decode_tokens_per_s_dense', 'decode_tokens_per_s_moe', 'distill_seconds']);

function numbers(x: unknown, path = '', out = new Map<string, number>()): Map<string, number> {
  if (typeof x === 'number') out.set(path, x);
  else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) if (!timing.has(k)) numbers(v, `${path}.${k}`, out);
  return out;
}

test('LaDiMo run on stories260K: every stage, the Qwen2-MoE export, and the same metrics twice', { skip }, async () => {
  const out = mkdtempSync(join(tmpdir(), 'moefy-export-'));
  const a = await run(out);
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'qwen2_moe');
  assert.deepEqual(config.mlp_only_layers, [0, 1, 2]);
  const sidecar = JSON.parse(readFileSync(join(out, 'moefy.json'), 'utf8'));
  assert.deepEqual(sidecar.layers.map((l: { policy: string }) => l.policy), a.layers.map((l) => l.policy));
  assert.equal(a.layers.length, 2);
  for (const l of a.layers) {
    assert.ok(l.mse_final < l.mse_before, `layer ${l.layer}: held-out mse ${l.mse_before} → ${l.mse_final}`);
    assert.ok(Math.abs(l.expert_load.reduce((s, v) => s + v, 0) - 1) < 1e-9);
    assert.ok(['top1', 'top2', 'top3', 'dynamic'].includes(l.policy));
  }
  const m = a.model;
  assert.ok(m.activated_non_embedding_moe < m.activated_non_embedding_dense);
  for (const v of [m.ppl_dense, m.ppl_moe, m.kl, m.agreement]) assert.ok(Number.isFinite(v));
  assert.ok(m.agreement > 0 && m.agreement <= 1);
  const b = await run();
  const [na, nb] = [numbers(a), numbers(b)];
  assert.equal(na.size, nb.size);
  for (const [k, v] of na) {
    const w = nb.get(k)!;
    assert.ok(Math.abs(v - w) <= 1e-6 * Math.max(1, Math.abs(v)), `${k}: ${v} then ${w}`);
  }
});

test('LaDiMo run resumes from its checkpoints and refuses another run\'s', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-ckpt-'));
  const s = { ...spec(), 'checkpoint.dir': dir };
  const paths = [s.model, s.tokenizer, s.data, dir];
  const lines: string[] = [];
  const first = await runTask('run', s, () => {}, paths);
  const again = await runTask('run', s, (m) => lines.push(m), paths);
  assert.ok(lines.some((m) => /distilled block loaded/.test(m)), 'the second run loads the distilled layers');
  assert.ok(!lines.some((m) => /^capture: /.test(m)), 'the second run does not capture again');
  const [na, nb] = [numbers(first), numbers(again)];
  for (const [k, v] of na) assert.ok(Math.abs(v - nb.get(k)!) <= 1e-6 * Math.max(1, Math.abs(v)), `${k}: ${v} then ${nb.get(k)}`);
  await assert.rejects(runTask('run', { ...s, 'train.steps': 41 }, () => {}, paths), /holds checkpoints of another run \(its train\.steps is 40, this spec's is 41\)/);
});

// Stops and resumes drive the stages directly, inside a page (Vite serves the engine; the model and data
// come through routes), with an AbortSignal: the capture stopped after five windows (two chunks saved, the
// third saved at the stop) and each layer's distillation stopped part-way (checkpoints at every loss
// reading) must resume to the bit-identical captured rows, weights and metrics of a run that never stopped.
test('LaDiMo capture and distillation stopped by an AbortSignal resume bit-identically from their checkpoints', { skip, timeout: 900_000 }, async (t) => {
  const { startEnginePage } = await import('../e2e/harness.ts');
  const log: string[] = [];
  const { server, browser, page } = await startEnginePage(t, log, shared);
  try {
    const s = { ...spec(), 'eval.maxWindows': 1, 'eval.throughputTokens': 64, 'eval.decodeTokens': 2 };
    type Stops = { captureWindows?: number; distill?: [layer: number, step: number][] };
    const run = (stops: Stops) => page.evaluate(async ({ s, stops }) => {
      const m = Object.assign({}, ...(await Promise.all([
        '/src/gpu/browser.ts', '/src/model/load.ts', '/src/model/llama.ts', '/src/model/source.ts', '/src/model/source-hub.ts', '/src/worker/storage.ts',
        '/src/methods/ladimo/checkpoint.ts', '/src/methods/ladimo/context.ts', '/src/methods/ladimo/data.ts', '/src/methods/ladimo/capture-stage.ts',
        '/src/methods/ladimo/distill-stage.ts', '/src/methods/ladimo/routing.ts', '/src/methods/ladimo/evaluate.ts',
      ].map((p) => import(/* @vite-ignore */ p)))));
      const source = async (p: string) => m.bytesSource(p, new Uint8Array(await (await fetch(`/__moefy/${p}`)).arrayBuffer()));
      const hash = (a: Float32Array) => new Uint32Array(a.buffer).reduce((h, v) => Math.imul(h ^ v, 16777619) >>> 0, 2166136261);
      const gpu = await m.createBrowserGpu();
      const files = await Promise.all(['models/stories260K/stories260K.bin', 'models/stories260K/tok512.bin'].map(source));
      const ckpt = await m.openCheckpoint(files);
      const model = await m.LlamaModel.load(gpu, ckpt.weights);
      const texts = ['brown-fiction', 'brown-adventure'].flatMap((d) => ['train', 'valid'].map((x) => source(`data/corpus/${d}.${x}.txt`)));
      const data = await m.textDataFromFiles(await Promise.all(texts), 'corpus');
      const store = m.blobStore(m.memoryBlobCache(), 'memory');
      const ctx = await m.openRun(s, { ckpt, files, model }, data, [3, 4], await m.RunCheckpoint.open(store, 'run', m.checkpointIdentity(s)));
      const stopped: string[] = [];
      const logs: string[] = [];
      // each stage again after every AbortError, as a reload would
      const resumed = async <T,>(call: (signal: AbortSignal, stop: () => void) => Promise<T>): Promise<T> => {
        for (;;) {
          const ac = new AbortController();
          try {
            return await call(ac.signal, () => ac.abort());
          } catch (e) {
            if ((e as Error).name !== 'AbortError') throw e;
            stopped.push((e as Error).message);
          }
        }
      };
      type GpuArray = { read(): Promise<Float32Array>; release(): void };
      let windows = 0;
      const capture: { tokens: number; layers: Map<number, { x: GpuArray; fx: GpuArray }> } = await resumed((signal, stop) => m.captureStage(ctx, {
        signal, onLog: (l: string) => logs.push(l), onProgress: () => ++windows === stops.captureWindows && stop(),
      }, { chunkRows: 200 }));
      const pending = [...(stops.distill ?? [])];
      const distilled = await resumed((signal, stop) => m.distillLayers(ctx, capture, ctx.layers, { signal, onLog: (l: string) => logs.push(l) }, {
        checkpointSeconds: stops.distill ? 0 : undefined,
        onPoint: (l: number, p: { step: number }) => {
          if (pending[0]?.[0] === l && pending[0][1] === p.step) {
            pending.shift();
            stop();
          }
        },
      })) as Map<number, { weights: Record<string, GpuArray>; result: object }>;
      const { global, routes } = await m.decideRouting(ctx, distilled, ctx.layers, 'adaptive');
      const ev = await m.evaluate(ctx, distilled, routes);
      const layers = [];
      for (const [l, d] of distilled) {
        const weights: Record<string, number> = {};
        for (const [k, w] of Object.entries(d.weights)) weights[k] = hash(await w.read());
        layers.push({ l, ...d.result, seconds: 0, weights, route: routes.get(l) });
        Object.values(d.weights).forEach((w) => w.release());
      }
      const captured = [];
      for (const c of capture.layers.values()) captured.push([hash(await c.x.read()), hash(await c.fx.read())]);
      for (const c of capture.layers.values()) [c.x, c.fx].forEach((x) => x.release());
      model.release();
      gpu.destroy();
      for (const k of Object.keys(ev.model)) if (/tokens_per_s/.test(k)) delete ev.model[k];
      return { stopped, logs, captured, tokens: capture.tokens, layers, global, model: ev.model, stored: (await store.list()).map((f: { path: string }) => f.path) as string[] };
    }, { s, stops });

    const plain = await run({});
    const stopped = await run({ captureWindows: 5, distill: [[3, 12], [4, 25]] });
    t.diagnostic(`stopped: ${stopped.stopped.join('; ')}`);
    t.diagnostic(stopped.logs.join('\n'));
    assert.deepEqual(stopped.stopped, ['capture was cancelled', 'distilling layer 3 was cancelled', 'distilling layer 4 was cancelled']);
    assert.ok(stopped.logs.some((l) => /^capture: resumed at \d+\/\d+ tokens/.test(l)), 'the capture resumes from its chunks');
    assert.ok(stopped.logs.includes('layer 3: resumed at step 12/40 from run'));
    assert.ok(stopped.logs.includes('layer 4: resumed at step 25/40 from run'));
    assert.ok(stopped.stored.some((p) => /capture\.c0002\.json$/.test(p)), 'the capture was saved in chunks');
    assert.ok(!stopped.stored.some((p) => /partial/.test(p)), 'a finished layer drops its partial checkpoints');
    const { stopped: _a, logs: _b, stored: _c, ...same } = stopped;
    const { stopped: _d, logs: _e, stored: _f, ...want } = plain;
    void _a, _b, _c, _d, _e, _f;
    assert.deepEqual(same, want);
  } finally {
    if (log.length) t.diagnostic(log.join('\n'));
    await browser.close().catch(() => {});
    await server.close().catch(() => {});
  }
});

// captureFfn only submits each window's forward. The capture stage used to report a window, and start its
// 10 s chunk clock, before the GPU had run it: on corpus-llama-7m the whole capture was queued in moments,
// then the first chunk's read-back waited minutes for all of it with no progress line (`moefy run` with
// checkpoint.dir looked stalled after its first window). So every report must come after all the work
// submitted before it has finished: a count of submitted and finished queue submissions says so.
test('LaDiMo capture reports a window only once the GPU has run it (corpus-llama-7m, checkpointed)', { skip, timeout: 300_000 }, async (t) => {
  const { startEnginePage } = await import('../e2e/harness.ts');
  const log: string[] = [];
  const { server, browser, page } = await startEnginePage(t, log, shared);
  try {
    // 4 windows of 64 tokens from one domain, last 2 of 8 layers
    const s = { ...spec(), tokenizer: '', 'calibration.domains': 'brown-news', 'calibration.tokens': 256, 'eval.window': 64, 'construct.layers': 'last:2' };
    const r = await page.evaluate(async ({ s }) => {
      const m = Object.assign({}, ...(await Promise.all([
        '/src/gpu/browser.ts', '/src/model/load.ts', '/src/model/llama.ts', '/src/model/source.ts', '/src/model/source-hub.ts', '/src/worker/storage.ts',
        '/src/methods/ladimo/checkpoint.ts', '/src/methods/ladimo/context.ts', '/src/methods/ladimo/data.ts', '/src/methods/ladimo/capture-stage.ts',
      ].map((p) => import(/* @vite-ignore */ p)))));
      const source = async (p: string) => m.bytesSource(p, new Uint8Array(await (await fetch(`/__moefy/${p}`)).arrayBuffer()));
      const gpu = await m.createBrowserGpu();
      const files = await Promise.all(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => source(`models/corpus-llama-7m/${f}`)));
      const ckpt = await m.openCheckpoint(files);
      const model = await m.LlamaModel.load(gpu, ckpt.weights);
      const data = await m.textDataFromFiles(await Promise.all(['train', 'valid'].map((x) => source(`data/corpus/brown-news.${x}.txt`))), 'corpus');
      const store = m.blobStore(m.memoryBlobCache(), 'memory');
      const ctx = await m.openRun(s, { ckpt, files, model }, data, [6, 7], await m.RunCheckpoint.open(store, 'run', m.checkpointIdentity(s)));
      // queue.onSubmittedWorkDone resolves in submission order, so `finished` is the last submission the GPU has run
      const queue = gpu.device.queue as GPUQueue;
      const submit = queue.submit.bind(queue);
      let submitted = 0;
      let finished = 0;
      queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
        submit(buffers);
        const n = ++submitted;
        void queue.onSubmittedWorkDone().then(() => (finished = Math.max(finished, n)));
      };
      const pending: number[] = [];
      const capture = await m.captureStage(ctx, { onProgress: () => pending.push(submitted - finished) });
      for (const c of capture.layers.values()) [c.x, c.fx].forEach((x: { release(): void }) => x.release());
      model.release();
      gpu.destroy();
      return { pending, tokens: capture.tokens, stored: (await store.list()).map((f: { path: string }) => f.path) as string[] };
    }, { s });
    t.diagnostic(`submissions still running at each report: ${r.pending.join(', ')}`);
    assert.equal(r.tokens, 256);
    assert.deepEqual(r.pending, [0, 0, 0, 0], 'one report per window, each after its window ran');
    assert.ok(r.stored.includes('run/capture.json') && r.stored.includes('run/capture.c0000.json'), r.stored.join(', '));
  } finally {
    if (log.length) t.diagnostic(log.join('\n'));
    await browser.close().catch(() => {});
    await server.close().catch(() => {});
  }
});
