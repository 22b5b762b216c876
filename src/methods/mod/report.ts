// The Mixture-of-Depths comparison in words (arXiv:2410.13077 §3 claims that MoD, alone or with LoRA,
// improves on the base model and on LoRA alone): one sentence per MoD variant and reference, with the
// accuracy difference and whether it stands out of the sampling noise of this many problems. Shared by the
// CLI and the workbench, so both say the same. No engine code: the page's bundle imports it.
import type { ModMetrics, VariantMetrics } from './run.ts';

/** The variants a run compares, in the order it runs and reports them. */
export const VARIANTS = ['base', 'lora', 'mod', 'mod+lora'] as const;
export type Variant = (typeof VARIANTS)[number];

/** Names the sentences use. */
export const VARIANT_NAMES: Record<Variant, string> = { base: 'the base model', lora: 'LoRA alone', mod: 'MoD alone', 'mod+lora': 'MoD + LoRA' };

/** z of a two-sided 95% interval. */
const Z95 = 1.959964;

/** The Wilson score interval of a proportion k/n at 95%: [low, high]. */
export function wilson(k: number, n: number): [number, number] {
  if (n <= 0) return [0, 1];
  const p = k / n, z2 = Z95 * Z95;
  const mid = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (Z95 / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

/**
 * Whether two accuracies on n problems each differ beyond chance: the pooled two-proportion z-test at 5%.
 * The variants answer the same problems, so a paired test would be sharper; this one errs on the side of
 * "within noise".
 */
export function clearDifference(a: VariantMetrics, b: VariantMetrics): boolean {
  const p = (a.correct + b.correct) / (a.scored + b.scored);
  const se = Math.sqrt(p * (1 - p) * (1 / a.scored + 1 / b.scored));
  return se > 0 && Math.abs(a.accuracy - b.accuracy) / se > Z95;
}

export interface ModVerdict {
  /** 'mod vs lora' */
  key: string;
  text: string;
  /** how the MoD variant's accuracy compares */
  outcome: 'better' | 'even' | 'worse';
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const points = (d: number) => `${d >= 0 ? '+' : '−'}${Math.abs(100 * d).toFixed(1)} points`;

/** Each MoD variant against each reference (base, LoRA) the run has: the paper's claims, as 'mod vs lora' and the two variants. */
export function modPairs(variants: readonly VariantMetrics[]): [key: string, mod: VariantMetrics, reference: VariantMetrics][] {
  const by = (v: Variant) => variants.find((x) => x.variant === v);
  return (['mod', 'mod+lora'] as const).flatMap((a) => (['base', 'lora'] as const).flatMap((b) => {
    const x = by(a), y = by(b);
    return x && y ? [[`${a} vs ${b}`, x, y] as [string, VariantMetrics, VariantMetrics]] : [];
  }));
}

/** One sentence for each MoD variant against each reference (base, LoRA) the run has. */
export function modVerdicts(m: Pick<ModMetrics, 'variants'>): ModVerdict[] {
  return modPairs(m.variants).map(([key, x, y]) => {
    const [a, b] = [x.variant, y.variant];
    const d = x.accuracy - y.accuracy;
    const verdict = d === 0 ? 'ties with' : d > 0 ? 'beats' : 'falls behind';
    const noise = d === 0 ? '' : clearDifference(x, y) ? ', a difference beyond chance at 95%' : `, within the sampling noise of ${x.scored} problems`;
    const prose = `; prose perplexity ${x.ppl_prose.toFixed(2)} against ${y.ppl_prose.toFixed(2)}`;
    return {
      key,
      text: `${VARIANT_NAMES[a]} ${verdict} ${VARIANT_NAMES[b]}: exact match ${pct(x.accuracy)} against ${pct(y.accuracy)} (${points(d)}${noise})${prose}.`,
      outcome: d > 0 ? 'better' : d < 0 ? 'worse' : 'even',
    };
  });
}
