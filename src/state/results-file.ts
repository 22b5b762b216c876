// A results file: what `moefy run --json` prints ({ spec, metrics }), or the metrics alone, for a spec
// whose method is 'dive', 'llama-moe-v2' or 'mod'. Their pages open one to show a run made elsewhere (a GPU
// server, a colleague's machine) with the same charts and tables as a run in the tab, and what its spec
// changes against the page's; an error names the file and what is missing.
import { diveComparisons } from '../methods/dive/report.ts';
import type { DiveMetrics } from '../methods/dive/run.ts';
import type { V2Metrics } from '../methods/llama-moe-v2/run.ts';
import { VARIANTS } from '../methods/mod/report.ts';
import type { ModMetrics } from '../methods/mod/run.ts';
import { FIELDS, parseSpec, type RunSpec, type SpecKey } from './spec.ts';

type Need = (k: string, ok: (v: unknown) => boolean, what: string) => void;

/** Where results on show came from, when from a file: its name and the run spec it was made with (null: none, or unreadable, why in specError). */
export interface FileSource {
  file: string;
  spec: RunSpec | null;
  specError: string | null;
}

/** The file's name and its `{ spec, metrics }` document's spec, read as the CLI reads specs. */
export function fileSource(text: string, file: string): FileSource {
  const doc = JSON.parse(text) as { spec?: unknown } | null;
  if (!doc || typeof doc !== 'object' || doc.spec === undefined) return { file, spec: null, specError: null };
  try {
    return { file, spec: parseSpec(doc.spec, `${file}: spec`), specError: null };
  } catch (e) {
    return { file, spec: null, specError: (e as Error).message };
  }
}

/** Where a run read and wrote, not what it computed: a file's spec may name other paths without being another run. */
const PLACES: readonly SpecKey[] = ['model', 'tokenizer', 'data', 'checkpoint.dir', 'export.dir'];

/** The fields (sources and output folders aside) where `theirs` differs from `ours`. */
export function specDifferences(ours: RunSpec, theirs: RunSpec): SpecKey[] {
  return FIELDS.map((f) => f.key).filter((k) => !PLACES.includes(k) && ours[k] !== theirs[k]);
}

/** `ours` with every field but the sources and output folders taken from `theirs`. */
export function adoptSpec(ours: RunSpec, theirs: RunSpec): RunSpec {
  return { ...theirs, ...Object.fromEntries(PLACES.map((k) => [k, ours[k]])) };
}

/** The metrics object of the file, checked to be the method's; `need` checks one of its fields. */
function metricsOf(text: string, file: string, method: string): { m: Record<string, unknown>; need: Need } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
  const o = doc as Record<string, unknown> | null;
  const m = (o && typeof o === 'object' && 'metrics' in o ? o.metrics : o) as Record<string, unknown> | null;
  if (!m || typeof m !== 'object') throw new Error(`${file}: expected an object, { spec, metrics } as moefy run --json prints it`);
  const spec = o?.spec as { method?: unknown } | undefined;
  if (spec && spec.method !== method) throw new Error(`${file}: spec.method is ${JSON.stringify(spec.method)}; this page shows runs of method '${method}'`);
  const need: Need = (k, ok, what) => {
    if (!ok(m[k])) throw new Error(`${file}: metrics.${k} must be ${what}`);
  };
  return { m, need };
}

const list = (v: unknown) => Array.isArray(v) && v.length > 0;

export function parseDiveFile(text: string, file: string): DiveMetrics {
  const { m, need } = metricsOf(text, file, 'dive');
  need('domains', (v) => list(v) && (v as unknown[]).every((x) => typeof x === 'string'), 'a non-empty list of domain names');
  const D = (m.domains as string[]).length;
  need('models', list, 'a non-empty list of models');
  need('clusters', (v) => !!v && Array.isArray((v as { groups?: unknown }).groups), 'an object with the experts\' domain groups');
  need('affinity', (v) => v === null || (typeof v === 'object' && ['ppl', 'normalised', 'correlation', 'merges'].every((k) => Array.isArray((v as Record<string, unknown>)[k]))), 'null or { ppl, normalised, correlation, merges }');
  need('comparisons', (v) => v === undefined || Array.isArray(v), 'a list, or absent (older files: computed here)');
  (m.models as Record<string, unknown>[]).forEach((r, i) => {
    if (typeof r?.name !== 'string' || !Array.isArray(r.ppl) || r.ppl.length !== D) throw new Error(`${file}: metrics.models[${i}] needs a name and ${D} perplexities (one per domain)`);
  });
  const metrics = m as unknown as DiveMetrics;
  return { ...metrics, comparisons: metrics.comparisons ?? diveComparisons(metrics.models) };
}

export function parseV2File(text: string, file: string): V2Metrics {
  const { m, need } = metricsOf(text, file, 'llama-moe-v2');
  need('dense', list, 'a non-empty list of { domain, ppl }');
  const domains = (m.dense as { domain?: unknown }[]).map((d) => d?.domain);
  need('points', list, 'a non-empty list of scores after construction and after each stage');
  (m.points as Record<string, unknown>[]).forEach((p, i) => {
    const scores = p?.scores as { domain?: unknown }[] | undefined;
    if (typeof p?.after !== 'string' || !Array.isArray(scores) || scores.map((s) => s?.domain).join() !== domains.join()) {
      throw new Error(`${file}: metrics.points[${i}] needs 'after' and a score for each of the ${domains.length} domains (${domains.join(', ')})`);
    }
  });
  need('stages', (v) => Array.isArray(v), 'a list of the post-training stages');
  need('construction', (v) => !!v && typeof v === 'object', 'the construction (v2.* settings and neuron counts)');
  need('activated', (v) => !!v && typeof (v as { mlp_share?: unknown }).mlp_share === 'number', 'the activated parameters ({ attention, attention_dense, mlp_dense, mlp_moe, mlp_share })');
  // files from before the comparison, the export, the expert load or attention MoE have none (their attention was dense)
  const metrics = m as unknown as V2Metrics;
  return {
    ...metrics,
    activated: { ...metrics.activated, attention_dense: metrics.activated.attention_dense ?? metrics.activated.attention },
    comparison: metrics.comparison?.map((v) => ({ ...v, attention_top_k: v.attention_top_k ?? null, activated_attention_share: v.activated_attention_share ?? 1 })) ?? null,
    export: metrics.export ?? null,
    expert_load: metrics.expert_load ?? [],
    attention_load: metrics.attention_load ?? [],
  };
}

export function parseModFile(text: string, file: string): ModMetrics {
  const { m, need } = metricsOf(text, file, 'mod');
  need('variants', list, 'a non-empty list of the variants scored');
  (m.variants as Record<string, unknown>[]).forEach((v, i) => {
    const ok = (VARIANTS as readonly unknown[]).includes(v?.variant) && ['accuracy', 'correct', 'scored', 'ppl_prose', 'tokens_per_s'].every((k) => typeof v[k] === 'number') &&
      typeof (v.params as { trainable?: unknown } | undefined)?.trainable === 'number';
    if (!ok) throw new Error(`${file}: metrics.variants[${i}] needs a variant (${VARIANTS.join(', ')}), params, accuracy, correct, scored, ppl_prose and tokens_per_s`);
  });
  need('layers', (v) => Array.isArray(v), 'a list of the late layers in the ensemble');
  const metrics = m as unknown as ModMetrics;
  // files from before the loss curves were kept have none
  return { ...metrics, variants: metrics.variants.map((v) => ({ ...v, train: v.train && { ...v.train, curve: v.train.curve ?? [] } })) };
}
