// A DIVE results file: what `moefy run --json` prints for a spec whose method is 'dive' ({ spec, metrics }),
// or the metrics alone. The DIVE page opens one to show a run made elsewhere (a GPU server, a colleague's
// machine) with the same charts and table as a run in the tab; an error names the file and what is missing.
import { diveComparisons } from '../methods/dive/report.ts';
import type { DiveMetrics } from '../methods/dive/run.ts';

export function parseDiveFile(text: string, file: string): DiveMetrics {
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
  if (spec && spec.method !== 'dive') throw new Error(`${file}: spec.method is ${JSON.stringify(spec.method)}; this page shows DIVE runs (method 'dive')`);
  const need = (k: string, ok: (v: unknown) => boolean, what: string) => {
    if (!ok(m[k])) throw new Error(`${file}: metrics.${k} must be ${what}`);
  };
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  need('domains', (v) => strings(v) && (v as string[]).length > 0, 'a non-empty list of domain names');
  const D = (m.domains as string[]).length;
  need('models', (v) => Array.isArray(v) && v.length > 0, 'a non-empty list of models');
  need('clusters', (v) => !!v && Array.isArray((v as { groups?: unknown }).groups), 'an object with the experts\' domain groups');
  need('affinity', (v) => v === null || (typeof v === 'object' && ['ppl', 'normalised', 'correlation', 'merges'].every((k) => Array.isArray((v as Record<string, unknown>)[k]))), 'null or { ppl, normalised, correlation, merges }');
  need('comparisons', (v) => v === undefined || Array.isArray(v), 'a list, or absent (older files: computed here)');
  (m.models as Record<string, unknown>[]).forEach((r, i) => {
    if (typeof r?.name !== 'string' || !Array.isArray(r.ppl) || r.ppl.length !== D) throw new Error(`${file}: metrics.models[${i}] needs a name and ${D} perplexities (one per domain)`);
  });
  const metrics = m as unknown as DiveMetrics;
  return { ...metrics, comparisons: metrics.comparisons ?? diveComparisons(metrics.models) };
}
