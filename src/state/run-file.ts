// Run files: a run's spec and everything it produced (RunResults) as one JSON document, for saving and
// sharing results (the URL carries only the spec, url.ts):
//   { format: 'moefy-run', version: 1, createdAt, spec: specToJson(spec), results }
// parseRunFile checks the whole structure, so the charts can trust what they are given; an error names
// the file and the path inside it ("run.json: results.distill[2].curve[5].mse must be a number, got …").
// Measurements may be ±Infinity or NaN (a diverged layer's MSE, a perplexity that overflowed); JSON has
// no such numbers, so they are written as the strings "Infinity", "-Infinity" and "NaN".
import { SpecError, parseSpec, specToJson, type RunSpec } from './spec.ts';
import type { ActivatedParams, Histogram, LayerPolicy, RunResults } from '../worker/pipeline-types.ts';

export const RUN_FILE_FORMAT = 'moefy-run';
export const RUN_FILE_VERSION = 1;

export class RunFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunFileError';
  }
}

export interface RunFile {
  spec: RunSpec;
  results: RunResults;
  /** when the file was written (ISO 8601) */
  createdAt: string;
}

/** The run file's text. */
export function runFileText(spec: RunSpec, results: RunResults, createdAt = new Date()): string {
  const doc = { format: RUN_FILE_FORMAT, version: RUN_FILE_VERSION, createdAt: createdAt.toISOString(), spec: specToJson(spec), results };
  return JSON.stringify(doc, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 1);
}

/** A run file's spec and results, checked; throws RunFileError naming `fileName` and the bad path. */
export function parseRunFile(text: string, fileName: string): RunFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new RunFileError(`${fileName}: not valid JSON: ${(e as Error).message}`);
  }
  const at = (path: string, detail: string) => new RunFileError(`${fileName}: ${path} ${detail}`);
  if (typeof doc !== 'object' || doc === null || (doc as { format?: unknown }).format !== RUN_FILE_FORMAT) {
    throw new RunFileError(`${fileName}: not a MoEfy run file (expected a JSON object with format '${RUN_FILE_FORMAT}')`);
  }
  const { version, createdAt, spec, results } = doc as Record<string, unknown>;
  if (typeof version === 'number' && version > RUN_FILE_VERSION) throw at('version', `${version}: made by a newer MoEfy; this build reads run files of version ≤ ${RUN_FILE_VERSION}`);
  if (version !== RUN_FILE_VERSION) throw at('version', `must be ${RUN_FILE_VERSION}, got ${show(version)}`);
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) throw at('createdAt', `must be a date and time (ISO 8601), got ${show(createdAt)}`);
  let runSpec: RunSpec;
  try {
    runSpec = parseSpec(spec, `${fileName}: spec`);
  } catch (e) {
    throw e instanceof SpecError ? new RunFileError(e.message) : e;
  }
  return { spec: runSpec, results: runResults(results, 'results', at), createdAt };
}

// ----------------------------------------------------------------------------- checks
// Each check takes a value and its path, and returns the value typed (objects rebuilt with their known
// keys only) or throws naming the path.

type Fail = (path: string, detail: string) => RunFileError;
type Check<T> = (v: unknown, path: string, fail: Fail) => T;

function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 60)}…` : s;
}

const int: Check<number> = (v, path, fail) => {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw fail(path, `must be a whole number ≥ 0, got ${show(v)}`);
  return v as number;
};

const share: Check<number> = (v, path, fail) => {
  if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw fail(path, `must be a number from 0 to 1, got ${show(v)}`);
  return v;
};

const NON_FINITE: Record<string, number> = { Infinity: Infinity, '-Infinity': -Infinity, NaN: NaN };

/** A measured value: any number, with ±Infinity and NaN written as strings. */
const measure: Check<number> = (v, path, fail) => {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && Object.hasOwn(NON_FINITE, v)) return NON_FINITE[v];
  throw fail(path, `must be a number, got ${show(v)}`);
};

const text: Check<string> = (v, path, fail) => {
  if (typeof v !== 'string') throw fail(path, `must be a string, got ${show(v)}`);
  return v;
};

const POLICIES: Record<LayerPolicy, true> = { top1: true, top2: true, top3: true, dynamic: true };

const policy: Check<LayerPolicy> = (v, path, fail) => {
  if (typeof v !== 'string' || !Object.hasOwn(POLICIES, v)) throw fail(path, `must be one of ${Object.keys(POLICIES).join(', ')}, got ${show(v)}`);
  return v as LayerPolicy;
};

function array<T>(item: Check<T>, length?: number): Check<T[]> {
  return (v, path, fail) => {
    if (!Array.isArray(v)) throw fail(path, `must be an array, got ${show(v)}`);
    if (length !== undefined && v.length !== length) throw fail(path, `must have ${length} entries, got ${v.length}`);
    return v.map((x, i) => item(x, `${path}[${i}]`, fail));
  };
}

function object<T>(shape: { [K in keyof T]: Check<T[K]> }): Check<T> {
  return (v, path, fail) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(path, `must be an object, got ${show(v)}`);
    const o = v as Record<string, unknown>;
    const out = {} as T;
    for (const key of Object.keys(shape) as (keyof T & string)[]) {
      if (!(key in o)) throw fail(`${path}.${key}`, 'is missing');
      out[key] = shape[key](o[key], `${path}.${key}`, fail);
    }
    return out;
  };
}

function nullable<T>(check: Check<T>): Check<T | null> {
  return (v, path, fail) => (v === null ? null : check(v, path, fail));
}

// ----------------------------------------------------------------------------- RunResults

const histogram = object<Histogram>({ counts: array(int), samples: int });

const activated = object<ActivatedParams>({
  dense: object({ total: int, nonEmbedding: int }),
  moe: object({ total: int, nonEmbedding: int }),
  perLayer: array(object({ layer: int, dense: int, moe: int })),
});

const runResults: Check<RunResults> = object<RunResults>({
  capture: nullable(object({ tokens: int, layers: array(int) })),
  distill: array(
    object({
      layer: int,
      mseBefore: measure,
      mseFinal: measure,
      relErr: measure,
      expertLoad: array(share),
      seconds: measure,
      curve: array(object({ step: int, mse: measure, aux: measure, total: measure })),
    }),
  ),
  routing: nullable(
    object({
      pU: share,
      pE: share,
      alpha: measure,
      beta: measure,
      layers: array(
        object({
          layer: int,
          histogram,
          byDomain: array(object({ domain: text, histogram })),
          alphaI: measure,
          betaI: measure,
          policy,
          kShare: array(share, 3) as Check<[number, number, number]>,
        }),
      ),
    }),
  ),
  evaluation: nullable(
    object({
      ppl_dense: measure,
      ppl_moe: measure,
      agreement: share,
      kl: measure,
      prefill_tokens_per_s_dense: measure,
      prefill_tokens_per_s_moe: measure,
      decode_tokens_per_s_dense: measure,
      decode_tokens_per_s_moe: measure,
      activated,
      eval_tokens: int,
    }),
  ),
  sweep: nullable(
    object({
      curve: array(object({ m: int, layers: array(int), ppl: measure, agreement: share, relThroughput: measure, activatedNonEmbedding: int })),
      sensitivity: array(object({ layer: int, ppl: measure, agreement: share })),
      ppl_dense: measure,
    }),
  ),
});
