// End to end: the LaDiMo pipeline in the engine worker, driven through its Comlink API as the UI drives it
// (EngineApi = model session + PipelineApi), on Chromium's SwiftShader WebGPU. stories260K loads from files;
// a tiny data set (a few KB of three Brown domains from ../shared/data/corpus) goes in as files; then
// capture → distill (2 MoE layers, 4 experts, 60 steps of 64 tokens) → profile → route a text, switch a
// policy → evaluate → sweep → export, with the stage-order errors on the way. The distillation is then
// deleted from storage, run again, cancelled part-way, resumed from its OPFS checkpoint, and must equal the
// uninterrupted one; a fresh worker (a reload) finds every stage's work in storage.
//
//   node --import ./bin/register.mjs --test e2e/pipeline.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { parseSpec, type RunSpec } from '../src/state/spec.ts';
import type { EngineApi } from '../src/worker/api.ts';
import type { LayerDistillResult, ModelMetrics, ResumeInfo, RoutingProfile, StorageReport, SweepResult, TaskProgress, TokenRouting } from '../src/worker/pipeline-types.ts';
import { e2eSkip, startEnginePage } from './harness.ts';

const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const STORIES = join(shared, 'models', 'stories260K');
const CORPUS = join(shared, 'data', 'corpus');
const DOMAINS = ['brown-adventure', 'brown-fiction', 'brown-news'];

const skip = e2eSkip({ [join(STORIES, 'stories260K.bin')]: 'the test assets (../shared beside the repo)', [CORPUS]: 'the test assets (../shared beside the repo)' });

const spec = parseSpec({
  calibration: { domains: 'all', tokens: 1536 },
  construct: { layers: 'last:2', experts: 4, split: 'contiguous', routerInit: 'random' },
  train: { steps: 60, batchTokens: 64, lr: 0.001, alpha: 0.01, topK: 2, heldOut: 0.1 },
  router: { policy: 'adaptive', pU: 0.25, pE: 0.25 },
  eval: { domain: 'brown-news', window: 128, maxWindows: 2, throughputTokens: 128, decodeTokens: 4 },
  seed: 0,
});

/** The first whole lines of a file, about `bytes` of them. */
function head(file: string, bytes: number): string {
  const out: string[] = [];
  let n = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (n >= bytes) break;
    if (!line.trim()) continue;
    out.push(line);
    n += line.length + 1;
  }
  return out.map((l) => `${l}\n`).join('');
}

type Outcome<T> = { ok: true; result: T; progress: TaskProgress[]; updates: number; maxGapMs: number } | { ok: false; name: string; message: string; progress: TaskProgress[] };

/** Starts a worker (a page load's worth) with the model and data loaded in it. */
async function startEngine(page: Page, data: { name: string; text: string }[]): Promise<void> {
  await page.evaluate(async (data) => {
    const g = globalThis as unknown as Record<string, unknown>;
    (g.__worker as Worker | undefined)?.terminate();
    const comlinkUrl = '/node_modules/comlink/dist/esm/comlink.mjs';
    const Comlink: typeof import('comlink') = await import(/* @vite-ignore */ comlinkUrl);
    const worker = new Worker('/src/worker/engine.worker.ts', { type: 'module', name: 'moefy-engine' });
    const engine = Comlink.wrap<EngineApi>(worker);
    const file = async (p: string) => new File([await (await fetch(`/__moefy/${p}`)).arrayBuffer()], p.split('/').pop()!);
    g.__worker = worker;
    g.__engine = engine;
    g.__proxy = Comlink.proxy;
    // the stage-order errors before a model and before data
    const noModel = await engine.capture({} as RunSpec).then(() => 'resolved', (e: Error) => e.message);
    await engine.loadModel({ kind: 'files', files: await Promise.all(['models/stories260K/stories260K.bin', 'models/stories260K/tok512.bin'].map(file)) });
    const noData = await engine.capture({} as RunSpec).then(() => 'resolved', (e: Error) => e.message);
    g.__summary = await engine.setData({ kind: 'files', files: data.map((d) => new File([d.text], d.name)) });
    g.__errors = [noModel, noData];
  }, data);
}

/** Calls one pipeline method in the page's worker with a progress callback (cancelling once `cancelAt` steps are done). */
function call<T>(page: Page, method: string, args: unknown[], cancelAt?: number): Promise<Outcome<T>> {
  return page.evaluate(async ({ method, args, cancelAt }) => {
    const g = globalThis as unknown as Record<string, unknown>;
    const engine = g.__engine as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const proxy = g.__proxy as <F>(f: F) => F;
    const progress: TaskProgress[] = [];
    let updates = 0;
    const onProgress = proxy((p: TaskProgress) => {
      progress.push(p);
      if (cancelAt !== undefined && p.done >= cancelAt) void engine.cancel();
    });
    // the page's main thread stays free: the longest gap between timer ticks while the worker works
    let last = performance.now();
    let maxGapMs = 0;
    const tick = setInterval(() => {
      maxGapMs = Math.max(maxGapMs, performance.now() - last);
      last = performance.now();
    }, 20);
    const extra = method === 'distill' ? [onProgress, proxy(() => updates++)] : method === 'setLayerPolicy' || method === 'routeText' ? [] : [onProgress];
    try {
      return { ok: true as const, result: await engine[method](...args, ...extra), progress, updates, maxGapMs };
    } catch (e) {
      return { ok: false as const, name: (e as Error).name, message: (e as Error).message, progress };
    } finally {
      clearInterval(tick);
    }
  }, { method, args, cancelAt }) as Promise<Outcome<T>>;
}

function ok<T>(o: Outcome<T>, what: string): T & {} {
  if (!o.ok) assert.fail(`${what} failed: ${o.name}: ${o.message}`);
  return o.result as T & {};
}

async function fails(page: Page, method: string, args: unknown[], pattern: RegExp): Promise<void> {
  const o = await call(page, method, args);
  assert.equal(o.ok, false, `${method} should fail`);
  if (!o.ok) assert.match(o.message, pattern);
}

/** Distillation results without their timings. */
const untimed = (r: LayerDistillResult[]) => r.map(({ seconds, ...rest }) => (void seconds, rest));

test('LaDiMo pipeline in the worker: every stage, stage-order errors, cancel and resume, storage across a reload', { skip, timeout: 600_000 }, async (t) => {
  const log: string[] = [];
  const { server, browser, page } = await startEnginePage(t, log, shared);
  const t0 = Date.now();
  const lap = (what: string) => t.diagnostic(`${what} at ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  try {
    const data = DOMAINS.flatMap((d) => [
      { name: `${d}.train.txt`, text: head(join(CORPUS, `${d}.train.txt`), 6000) },
      { name: `${d}.valid.txt`, text: head(join(CORPUS, `${d}.valid.txt`), 3000) },
    ]);
    await startEngine(page, data);
    const [noModel, noData] = await page.evaluate(() => (globalThis as unknown as { __errors: string[] }).__errors);
    assert.match(noModel, /^capture: no model is loaded; load a model in the Model stage first$/);
    assert.match(noData, /^capture: no calibration data; choose it in the Data stage first$/);
    const summary = await page.evaluate(() => (globalThis as unknown as { __summary: unknown }).__summary) as { label: string; domains: { name: string }[] };
    assert.deepEqual(summary.domains.map((d) => d.name), DOMAINS);
    lap('model and data loaded');

    // ---- stage order
    await fails(page, 'distill', [spec], /^distill: no complete capture for this spec; run the Capture stage first$/);
    await fails(page, 'profile', [spec], /^profile: layers 3, 4 not distilled for this spec; run the Distill stage first$/);
    await fails(page, 'evaluate', [spec], /^evaluate: no routing policies yet; run the Profile stage first$/);

    // ---- capture → distill
    const capture = ok(await call<{ tokens: number; layers: number[] }>(page, 'capture', [spec]), 'capture');
    assert.deepEqual(capture, { tokens: 1536, layers: [3, 4] });
    lap('captured');
    const d1 = await call<LayerDistillResult[]>(page, 'distill', [spec]);
    const first = ok(d1, 'distill');
    lap('distilled');
    assert.deepEqual(first.map((l) => l.layer), [3, 4]);
    for (const l of first) {
      assert.equal(l.curve.length, 60, 'a loss reading every step of a 60-step run');
      assert.ok(l.mseFinal < l.mseBefore, `layer ${l.layer}: held-out mse ${l.mseBefore} → ${l.mseFinal}`);
    }
    assert.ok(d1.ok && d1.updates === 120, 'every loss reading streams to the page');
    const steps = d1.progress.filter((p) => p.stage === 'distill' && p.unit === 'steps');
    assert.ok(steps.length >= 2 && steps.at(-1)!.done === 120 && steps.at(-1)!.total === 120, 'progress counts the steps of both layers');
    assert.ok(steps.length < 120, `progress is throttled (${steps.length} callbacks for 120 steps)`);
    assert.ok(steps.some((p) => p.etaSeconds !== null), 'progress has an ETA');
    assert.ok(d1.ok && d1.maxGapMs < 2000, `the page's main thread stays free (longest timer gap ${d1.ok && d1.maxGapMs.toFixed(0)} ms)`);

    // ---- profile, route a text, switch a policy
    const routing = ok(await call<RoutingProfile>(page, 'profile', [spec]), 'profile');
    lap('profiled');
    assert.equal(routing.layers.length, 2);
    for (const l of routing.layers) {
      assert.equal(l.histogram.counts.length, 50);
      assert.equal(l.histogram.counts.reduce((a, b) => a + b, 0), l.histogram.samples);
      assert.deepEqual(l.byDomain.map((d) => d.domain), DOMAINS, 'a histogram per calibration domain (Fig. 9)');
      assert.equal(l.byDomain.reduce((n, d) => n + d.histogram.samples, 0), l.histogram.samples, 'the domains add up to the pooled profile');
      assert.ok(['top1', 'top2', 'top3', 'dynamic'].includes(l.policy));
    }
    const text = 'Once upon a time, there was a little girl.';
    const routed = ok(await call<TokenRouting>(page, 'routeText', [text]), 'routeText');
    assert.equal(routed.tokens.slice(1).join(''), text, 'the pieces after BOS spell the text');
    for (const l of routed.layers) {
      assert.equal(l.probs.length, routed.tokens.length);
      for (const [i, p] of l.probs.entries()) {
        assert.equal(p.length, 4);
        assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5);
        assert.ok(l.experts[i].length >= 1 && l.experts[i].length <= 3 && l.experts[i].length === l.weights[i].length);
      }
    }
    const top1 = ok(await call<ModelMetrics['activated']>(page, 'setLayerPolicy', [4, 'top1']), 'setLayerPolicy');
    const top3 = ok(await call<ModelMetrics['activated']>(page, 'setLayerPolicy', [4, 'top3']), 'setLayerPolicy');
    assert.ok(top1.moe.nonEmbedding < top3.moe.nonEmbedding && top3.moe.nonEmbedding < top3.dense.nonEmbedding);
    const routed3 = ok(await call<TokenRouting>(page, 'routeText', [text]), 'routeText');
    assert.ok(routed3.layers.find((l) => l.layer === 4)!.experts.every((e) => e.length === 3), 'top3 sends every token to 3 experts');
    await fails(page, 'setLayerPolicy', [1, 'top1'], /layer 1 is not converted \(converted: 3, 4\)/);
    ok(await call(page, 'setLayerPolicy', [4, routing.layers[1].policy]), 'setLayerPolicy');

    // ---- evaluate, sweep, export
    const metrics = ok(await call<ModelMetrics>(page, 'evaluate', [spec]), 'evaluate');
    lap('evaluated');
    for (const v of [metrics.ppl_dense, metrics.ppl_moe, metrics.kl]) assert.ok(Number.isFinite(v));
    assert.ok(metrics.agreement > 0 && metrics.agreement <= 1);
    assert.ok(metrics.activated.moe.nonEmbedding < metrics.activated.dense.nonEmbedding);
    await fails(page, 'evaluate', [{ ...spec, 'router.pU': 0.3 }], /router\.pU changed since the Profile stage \(0\.25 → 0\.3\); run Profile again/);
    const sweep = ok(await call<SweepResult>(page, 'sweep', [spec]), 'sweep');
    lap('swept');
    assert.deepEqual(sweep.curve.map((p) => p.layers), [[], [4], [3, 4]]);
    assert.deepEqual(sweep.sensitivity.map((p) => p.layer), [3, 4]);
    assert.equal(sweep.curve[0].ppl, sweep.ppl_dense, 'm = 0 is the dense model');
    assert.ok(sweep.curve.every((p) => p.relThroughput > 0 && p.activatedNonEmbedding > 0));
    assert.ok(sweep.curve[2].activatedNonEmbedding < sweep.curve[0].activatedNonEmbedding);
    const exported = await page.evaluate(async (spec) => {
      const engine = (globalThis as unknown as { __engine: { exportModel(s: unknown): Promise<{ name: string; bytes: Uint8Array }[]> } }).__engine;
      const files = await engine.exportModel(spec);
      const text = (n: string) => new TextDecoder().decode(files.find((f) => f.name === n)!.bytes);
      return { names: files.map((f) => f.name).sort(), config: JSON.parse(text('config.json')), sidecar: JSON.parse(text('moefy.json')) };
    }, spec);
    lap('exported');
    assert.ok(exported.names.includes('model.safetensors'));
    assert.equal(exported.config.model_type, 'qwen2_moe');
    assert.deepEqual(exported.config.mlp_only_layers, [0, 1, 2]);
    assert.deepEqual(exported.sidecar.layers.map((l: { policy: string }) => l.policy), routing.layers.map((l) => l.policy));

    // ---- storage: delete the distilled layers, distil again, cancel part-way, resume
    const report = ok(await call<StorageReport>(page, 'storage', []), 'storage');
    t.diagnostic(JSON.stringify(report));
    assert.equal(report.backend, 'opfs');
    const stored = (kind: string) => report.items.filter((i) => i.kind === kind);
    assert.equal(stored('capture').length, 1);
    assert.equal(stored('checkpoint').length, 1);
    assert.ok(stored('capture')[0].bytes >= 1536 * 64 * 4 * 4, 'x and f(x) of two layers');
    assert.match(stored('checkpoint')[0].label, /distilled layers 3, 4/);
    ok(await call(page, 'deleteStored', [stored('checkpoint')[0].key]), 'deleteStored');
    const cancelled = await call<LayerDistillResult[]>(page, 'distill', [spec], 30);
    assert.equal(cancelled.ok, false, 'the cancelled distillation rejects');
    if (!cancelled.ok) assert.equal(cancelled.name, 'AbortError', cancelled.message);
    const resume = ok(await call<ResumeInfo>(page, 'resumeInfo', [spec]), 'resumeInfo');
    t.diagnostic(`after cancel: ${JSON.stringify(resume)}`);
    assert.ok(resume.captured);
    assert.ok(resume.partial && resume.partial.step > 0 && resume.partial.steps === 60, 'a layer was stopped mid-way and checkpointed');
    const again = ok(await call<LayerDistillResult[]>(page, 'distill', [spec]), 'resumed distill');
    lap('cancelled and resumed');
    assert.deepEqual(untimed(again), untimed(first), 'the resumed distillation equals the uninterrupted one');

    // ---- a reload: a fresh worker finds the capture and the layers in storage
    await startEngine(page, data);
    const reloaded = ok(await call<ResumeInfo>(page, 'resumeInfo', [spec]), 'resumeInfo');
    assert.deepEqual(reloaded, { captured: true, layersDone: [3, 4], partial: null });
    const fromStorage = await call<LayerDistillResult[]>(page, 'distill', [spec]);
    assert.deepEqual(untimed(ok(fromStorage, 'distill from storage')), untimed(first));
    assert.ok(fromStorage.progress.some((p) => /distilled block loaded/.test(p.detail)), 'the layers load instead of training');
    assert.ok(!fromStorage.progress.some((p) => p.unit === 'steps'), 'nothing trains again');
    lap('reloaded');
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.join('\n')}`);
    throw e;
  } finally {
    await browser.close().catch(() => {});
    await server.close().catch(() => {});
  }
});
