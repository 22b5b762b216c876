// The LaDiMo pipeline (arXiv 2408.04278) in the engine worker: PipelineApi (pipeline-types.ts) over the
// model the Model stage loaded (model.ts) and the data setData chose. Each stage takes the whole spec and
// runs the engine's stage (src/methods/ladimo) on the run of that spec: a RunContext kept between calls, so
// the captured activations and distilled blocks stay on the GPU from one stage to the next, with its
// checkpoints in browser storage (storage.ts, runs.ts), so a reload resumes. Stages run one at a time with
// the model's other uses; progress reaches the page at most four times a second; cancel() stops the
// running stage at its next step with an AbortError, its checkpoints kept. Methods 'train' (train.ts),
// 'dive', 'llama-moe-v2' and 'mod' (their pieces in pieces.ts) run the same way, on copies of the loaded model.
import * as Comlink from 'comlink';
import { fetchBrownSources } from '../data/brown.ts';
import { convertLayers } from '../moe/block.ts';
import { fileSource } from '../model/source.ts';
import type { CaptureResult } from '../methods/ladimo/capture.ts';
import { captureStage, loadCapture } from '../methods/ladimo/capture-stage.ts';
import { RunCheckpoint } from '../methods/ladimo/checkpoint.ts';
import { openRun, specConstruction, type RunContext } from '../methods/ladimo/context.ts';
import { textDataFromFiles, type TextData } from '../methods/ladimo/data.ts';
import { distillLayers, layerName, loadDistilled, partialPointer, releaseDistilled, type DistilledLayer } from '../methods/ladimo/distill-stage.ts';
import { evaluate } from '../methods/ladimo/evaluate.ts';
import { exportFiles } from '../methods/ladimo/export-moe.ts';
import { countParams, type ParamReport } from '../methods/ladimo/params.ts';
import type { MaxWeights } from '../methods/ladimo/profile.ts';
import { routeTokens } from '../methods/ladimo/profile.ts';
import { throttled, throwIfAborted, type TaskControl } from '../methods/ladimo/progress.ts';
import { histogram, policyKShare, type RouterPolicy } from '../methods/ladimo/router-policy.ts';
import { moeLayerSpecs, moeLayers, profileRouting, routesFor, routingOptions, type LayerRoute } from '../methods/ladimo/routing.ts';
import { layerSweep } from '../methods/ladimo/sweep.ts';
import { specLayers, type RunSpec } from '../state/spec.ts';
import type { LoadedSession, ModelSession } from './model.ts';
import type {
  ActivatedParams, DataSource, Histogram, LayerDistillResult, LayerPolicy, PipelineApi, RoutingProfile, TaskProgress, TaskStage,
} from './pipeline-types.ts';
import { deleteRunItem, runItems, runKey } from './runs.ts';
import { openBrowserStore, type BrowserStore } from './storage.ts';
import { storedTraining, trainLoaded } from './train.ts';
import { pieceMemo, storedPieces } from './pieces.ts';
import { diveRun } from '../methods/dive/run.ts';
import { v2Run } from '../methods/llama-moe-v2/run.ts';
import { modRun } from '../methods/mod/run.ts';

/** Bins of the w_m histograms over [0, 1]. */
const HISTOGRAM_BINS = 50;
/** Shortest gap between two progress callbacks (each crosses the worker boundary). */
const PROGRESS_MS = 250;
const POLICIES: readonly LayerPolicy[] = ['top1', 'top2', 'top3', 'dynamic'];

/** The profile and the routes it set; setLayerPolicy changes the routes. */
interface RoutingState {
  profile: MaxWeights & { decided: RouterPolicy };
  routes: Map<number, LayerRoute>;
  /** the router fields the profile ran with */
  router: Pick<RunSpec, 'router.policy' | 'router.pU' | 'router.pE'>;
}

/** One spec's run on the loaded model and data. */
interface Run {
  dir: string;
  ctx: RunContext;
  capture: CaptureResult | null;
  distilled: Map<number, DistilledLayer>;
  routing: RoutingState | null;
}

export function pipelineSession(models: ModelSession, openStore: () => Promise<BrowserStore> = openBrowserStore): PipelineApi {
  let data: TextData | null = null;
  let run: Run | null = null;
  let store: Promise<BrowserStore> | null = null;
  const getStore = () => (store ??= openStore());
  const running = new Set<AbortController>();

  models.onUnload(() => dropRun());

  function dropRun(): void {
    if (!run) return;
    dropCapture(run);
    dropDistilled(run);
    run = null;
  }

  function dropCapture(r: Run): void {
    for (const c of r.capture?.layers.values() ?? []) [c.x, c.fx].forEach((t) => t.release());
    r.capture = null;
  }

  function dropDistilled(r: Run): void {
    releaseDistilled(r.distilled);
    r.distilled.clear();
    r.routing = null;
  }

  function needData(what: string): TextData {
    if (!data) throw new Error(`${what}: no calibration data; choose it in the Data stage first`);
    return data;
  }

  /** The run of `spec` on the loaded model and data: the current one, or a new one (its checkpoints found in storage). */
  async function runFor(spec: RunSpec, loaded: LoadedSession, what: string): Promise<Run> {
    const text = needData(what);
    const { identity, dir } = await runKey(spec, loaded.summary, text);
    if (run?.dir === dir && run.ctx.model === loaded.model && run.ctx.data === text) {
      run.ctx.spec = spec;
      run.ctx.store?.refresh(); // storage may have changed since the last stage (deleteStored, another tab)
      return run;
    }
    const layers = specLayers(spec, loaded.ckpt.config.nLayers);
    const cp = await RunCheckpoint.open(await getStore(), dir, identity);
    const ctx = await openRun(spec, { ckpt: loaded.ckpt, files: loaded.files, model: loaded.model }, text, layers, cp);
    dropRun();
    run = { dir, ctx, capture: null, distilled: new Map(), routing: null };
    return run;
  }

  /** Runs a long task on the loaded model: one at a time with the model's other uses, cancellable, with throttled progress. */
  function longTask<T>(what: TaskStage, onProgress: ((p: TaskProgress) => void) | undefined, body: (loaded: LoadedSession, control: TaskControl) => Promise<T>): Promise<T> {
    const abort = new AbortController();
    running.add(abort);
    return models
      .withModel(what, async (loaded) => {
        throwIfAborted(abort.signal, what); // cancelled while it waited its turn
        return body(loaded, workerControl(what, onProgress, abort.signal));
      })
      .finally(() => running.delete(abort));
  }

  /** A LaDiMo stage: a long task on `spec`'s run. */
  function stage<T>(what: TaskStage, spec: RunSpec, onProgress: ((p: TaskProgress) => void) | undefined, body: (r: Run, control: TaskControl) => Promise<T>): Promise<T> {
    return longTask(what, onProgress, async (loaded, control) => body(await runFor(spec, loaded, what), control));
  }

  async function needCapture(r: Run, what: string): Promise<CaptureResult> {
    r.capture ??= await loadCapture(r.ctx);
    if (!r.capture) throw new Error(`${what}: no complete capture for this spec; run the Capture stage first`);
    return r.capture;
  }

  async function needDistilled(r: Run, what: string): Promise<Map<number, DistilledLayer>> {
    for (const l of r.ctx.layers) {
      const d = r.distilled.has(l) ? null : await loadDistilled(r.ctx, l);
      if (d) r.distilled.set(l, d);
    }
    const missing = r.ctx.layers.filter((l) => !r.distilled.has(l));
    if (missing.length) throw new Error(`${what}: layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not distilled for this spec; run the Distill stage first`);
    return r.distilled;
  }

  function needRouting(r: Run | null, what: string, spec?: RunSpec): RoutingState {
    if (!r?.routing) throw new Error(`${what}: no routing policies yet; run the Profile stage first`);
    const changed = spec && (Object.keys(r.routing.router) as (keyof RoutingState['router'])[]).find((k) => spec[k] !== r.routing!.router[k]);
    if (changed) throw new Error(`${what}: ${changed} changed since the Profile stage (${r.routing.router[changed]} → ${spec[changed]}); run Profile again`);
    return r.routing;
  }

  function activated(r: Run, dense: ParamReport, moe: ParamReport): ActivatedParams {
    return {
      dense: { ...dense.activated },
      moe: { ...moe.activated },
      perLayer: r.ctx.layers.map((l) => ({ layer: l, dense: dense.layers[l].ffnActivated, moe: moe.layers[l].router + moe.layers[l].ffnActivated })),
    };
  }

  function currentParams(r: Run, routes: ReadonlyMap<number, LayerRoute>): ActivatedParams {
    const c = r.ctx.ckpt.config;
    return activated(r, countParams(c), countParams(c, moeLayerSpecs(r.ctx.spec, r.distilled, routes)));
  }

  return {
    async setData(source) {
      const text = await openData(source);
      data = text;
      return { label: text.label, domains: text.domains.map(({ name, trainBytes, validBytes }) => ({ name, trainBytes, validBytes })) };
    },

    resumeInfo: (spec) =>
      models.withModel('resumeInfo', async (loaded) => {
        const { identity, dir } = await runKey(spec, loaded.summary, needData('resumeInfo'));
        const mine = run?.dir === dir ? run : null;
        const cp = await RunCheckpoint.find(await getStore(), dir, identity);
        const layers = specLayers(spec, loaded.ckpt.config.nLayers);
        const construction = specConstruction(spec);
        const layersDone: number[] = [];
        let partial = null;
        for (const l of layers) {
          if (mine?.distilled.has(l) || (await cp?.has(layerName(l, construction)))) layersDone.push(l);
          else if (cp && !partial) {
            const p = await partialPointer(cp, layerName(l, construction));
            if (p) partial = { layer: l, step: p.step, steps: p.steps };
          }
        }
        return { captured: !!mine?.capture || !!(await cp?.has('capture')), layersDone, partial };
      }),

    capture: (spec, onProgress) =>
      stage('capture', spec, onProgress, async (r, control) => {
        r.capture ??= await captureStage(r.ctx, control);
        return { tokens: r.capture.tokens, layers: [...r.capture.layers.keys()] };
      }),

    distill: (spec, onProgress, onUpdate) =>
      stage('distill', spec, onProgress, async (r, control) => {
        const capture = await needCapture(r, 'distill');
        const todo = r.ctx.layers.filter((l) => !r.distilled.has(l));
        if (todo.length) {
          r.routing = null;
          const got = await distillLayers(r.ctx, capture, todo, control, { onPoint: (layer, point) => onUpdate?.({ layer, point }) });
          for (const [l, d] of got) r.distilled.set(l, d);
        }
        return r.ctx.layers.map((l): LayerDistillResult => {
          const { result: x } = r.distilled.get(l)!;
          return { layer: l, mseBefore: x.mseBefore, mseFinal: x.mseFinal, relErr: x.relErr, expertLoad: x.expertLoad, seconds: x.seconds, curve: x.curve };
        });
      }),

    profile: (spec, onProgress) =>
      stage('profile', spec, onProgress, async (r, control) => {
        const distilled = await needDistilled(r, 'profile');
        const profile = await profileRouting(r.ctx, distilled, r.ctx.layers, control);
        const { routes } = routesFor(spec['router.policy'], r.ctx.layers, profile.decided);
        r.routing = { profile, routes, router: { 'router.policy': spec['router.policy'], 'router.pU': spec['router.pU'], 'router.pE': spec['router.pE'] } };
        return routingProfile(profile, routes);
      }),

    setLayerPolicy: (layer, policy) =>
      models.withModel('setLayerPolicy', async () => {
        const routing = needRouting(run, 'setLayerPolicy');
        const route = routing.routes.get(layer);
        if (!route) throw new Error(`setLayerPolicy: layer ${layer} is not converted (converted: ${[...routing.routes.keys()].join(', ')})`);
        if (!POLICIES.includes(policy)) throw new Error(`setLayerPolicy: policy must be one of ${POLICIES.join(', ')}, got ${JSON.stringify(policy)}`);
        const E = run!.ctx.spec['construct.experts'];
        const k = policy === 'top1' ? 1 : policy === 'top2' ? 2 : 3;
        if (k > E) throw new Error(`setLayerPolicy: ${policy} needs ${k} experts, layer ${layer} has ${E}`);
        routing.routes.set(layer, { ...route, policy, kShare: policyKShare(routing.profile.pooled.get(layer)!, policy, route.alphaI!, route.betaI!) });
        return currentParams(run!, routing.routes);
      }),

    routeText: (text) =>
      models.withModel('routeText', async ({ model, ckpt }) => {
        const routing = needRouting(run, 'routeText');
        const tok = ckpt.tokenizer;
        const ids = tok.encode(text, { bos: true }).slice(0, model.seqLen);
        const normTopK = run!.ctx.spec['train.normTopK'];
        const blocks = convertLayers(model, moeLayers(run!.distilled, routing.routes.keys(), (l) => routingOptions(routing.routes.get(l)!, normTopK)));
        try {
          const routed = await routeTokens(model, blocks, ids);
          return {
            tokens: ids.map((id, i) => tok.decodeToken(id, ids[i - 1])),
            layers: [...routed].map(([layer, t]) => ({ layer, experts: t.experts, weights: t.weights, probs: t.probs })),
          };
        } finally {
          for (const [l, b] of blocks) {
            model.restoreDense(l);
            b.release();
          }
        }
      }),

    evaluate: (spec, onProgress) =>
      stage('evaluate', spec, onProgress, async (r, control) => {
        const { routes } = needRouting(r, 'evaluate', spec);
        const ev = await evaluate(r.ctx, r.distilled, routes, control);
        const { activated_params_dense, activated_params_moe, activated_non_embedding_dense, activated_non_embedding_moe, ...scores } = ev.model;
        void activated_params_dense, activated_params_moe, activated_non_embedding_dense, activated_non_embedding_moe;
        return { ...scores, activated: activated(r, ev.params.dense, ev.params.moe), eval_tokens: ev.evalTokens };
      }),

    sweep: (spec, onProgress) =>
      stage('sweep', spec, onProgress, async (r, control) => {
        const distilled = await needDistilled(r, 'sweep');
        const { curve, sensitivity } = await layerSweep(r.ctx, distilled, r.ctx.layers, spec['router.policy'], control);
        return {
          curve: curve.map((p) => ({
            m: p.m, layers: p.layers, ppl: p.ppl_moe, agreement: p.agreement,
            relThroughput: p.prefill_tokens_per_s_moe / p.prefill_tokens_per_s_dense, activatedNonEmbedding: p.activated_non_embedding_moe,
          })),
          sensitivity: sensitivity.map((p) => ({ layer: p.layer, ppl: p.ppl_moe, agreement: p.agreement })),
          ppl_dense: curve[0].ppl_dense,
        };
      }),

    exportModel: (spec, onProgress) =>
      stage('export', spec, onProgress, async (r, control) => {
        const { routes } = needRouting(r, 'exportModel', spec);
        // each file's bytes in a buffer of its own, so they can be transferred rather than copied
        const files = (await exportFiles(r.ctx, r.distilled, routes, control)).map(({ name, bytes }) => ({
          name,
          bytes: bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice(),
        }));
        return Comlink.transfer(files, files.map((f) => f.bytes.buffer as ArrayBuffer));
      }),

    train: (spec, onProgress, onUpdate) =>
      longTask('train', onProgress, async (loaded, control) => trainLoaded(loaded, needData('train'), spec, await getStore(), control, onUpdate)),

    trainResumeInfo: (spec) =>
      models.withModel('trainResumeInfo', async (loaded) => storedTraining(await getStore(), spec, loaded, needData('trainResumeInfo'))),

    dive: (spec, onProgress) =>
      longTask('dive', onProgress, async (loaded, control) => {
        const text = needData('dive');
        const memo = await pieceMemo(await getStore(), spec, loaded, text, 'dive');
        return diveRun(loaded.model.gpu, loaded.ckpt, text, spec, control, memo);
      }),

    llamaMoeV2: (spec, onProgress) =>
      longTask('llamaMoeV2', onProgress, async (loaded, control) => {
        const text = needData('llamaMoeV2');
        const memo = await pieceMemo(await getStore(), spec, loaded, text, 'llama-moe-v2');
        return v2Run(loaded.model.gpu, { ckpt: loaded.ckpt, modelFiles: loaded.files }, text, spec, control, null, memo);
      }),

    mod: (spec, onProgress) =>
      longTask('mod', onProgress, async (loaded, control) => {
        const text = needData('mod');
        const memo = await pieceMemo(await getStore(), spec, loaded, text, 'mod');
        return modRun(loaded.model.gpu, loaded.ckpt, text, spec, control, memo);
      }),

    piecesResumeInfo: (spec) =>
      models.withModel('piecesResumeInfo', async (loaded) => {
        if (spec.method !== 'dive' && spec.method !== 'llama-moe-v2' && spec.method !== 'mod') throw new Error(`piecesResumeInfo: method '${spec.method}' keeps no pieces`);
        return storedPieces(await getStore(), spec, loaded, needData('piecesResumeInfo'), spec.method);
      }),

    async cancel() {
      for (const a of running) a.abort();
    },

    async storage() {
      const s = await getStore();
      const [items, cache, { usage, quota }] = await Promise.all([runItems(s), models.cacheInfo(), s.estimate()]);
      const downloads = cache.entries.map((e) => ({ key: `model:${e.key}`, kind: 'model' as const, label: `${e.key}${e.inUse ? ' (the loaded model)' : ''}`, bytes: e.size }));
      return { backend: s.backend, items: [...items, ...downloads], usage, quota };
    },

    async deleteStored(key) {
      // a download is the model session's; it refuses the loaded model's files
      if (key.startsWith('model:')) return models.deleteCached(key.slice('model:'.length));
      await models.serial(async () => {
        const { dir, part } = await deleteRunItem(await getStore(), key);
        if (run?.dir !== dir) return;
        // what is deleted is recomputed next time, not served from memory
        if (part === 'capture') dropCapture(run);
        else dropDistilled(run);
      });
    },
  };
}

/** The worker's TaskControl: progress throttled, log lines as progress with the message as detail. */
function workerControl(stage: TaskStage, onProgress: ((p: TaskProgress) => void) | undefined, signal: AbortSignal): TaskControl {
  if (!onProgress) return { signal };
  let last: TaskProgress = { stage, done: 0, total: 1, unit: '', etaSeconds: null, detail: '' };
  const send = throttled(onProgress, PROGRESS_MS);
  return {
    signal,
    onProgress: (p) => send((last = p)),
    onLog: (detail) => onProgress({ ...last, detail }),
  };
}

/** The text of a DataSource: the built-in Brown Corpus from this site, or the user's .txt files. */
async function openData(source: DataSource): Promise<TextData> {
  if (source.kind === 'builtin') {
    if (source.corpus !== 'brown') throw new Error(`setData: no built-in corpus '${String(source.corpus)}' (built in: brown)`);
    const site = new URL((import.meta as { env?: { BASE_URL?: string } }).env?.BASE_URL ?? '/', globalThis.location.href).href;
    const files = await fetchBrownSources(site).catch((e: Error) => {
      throw new Error(`setData: the built-in Brown Corpus is not available here (${e.message}); choose .txt files instead`);
    });
    return textDataFromFiles(files, 'Brown Corpus');
  }
  if (!source.files?.length) throw new Error('setData: no files were given; choose .txt files (<domain>.train.txt with <domain>.valid.txt, or any <name>.txt)');
  return textDataFromFiles(source.files.map((f) => fileSource(f, f.name)), source.files.length === 1 ? source.files[0].name : `${source.files.length} files`);
}

function hist(w: ArrayLike<number>): Histogram {
  const h = histogram(w, HISTOGRAM_BINS);
  return { counts: h.counts, samples: h.total };
}

function routingProfile(p: MaxWeights & { decided: RouterPolicy }, routes: ReadonlyMap<number, LayerRoute>): RoutingProfile {
  const { pU, pE, alpha, beta } = p.decided;
  return {
    pU, pE, alpha, beta,
    layers: p.decided.layers.map((d) => ({
      layer: d.layer,
      histogram: hist(p.pooled.get(d.layer)!),
      byDomain: [...p.byDomain].map(([domain, byLayer]) => ({ domain, histogram: hist(byLayer.get(d.layer) ?? []) })),
      alphaI: d.alphaI,
      betaI: d.betaI,
      policy: routes.get(d.layer)!.policy,
      kShare: routes.get(d.layer)!.kShare,
    })),
  };
}
