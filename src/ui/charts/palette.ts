// Chart colours, as literal values: SVG presentation attributes cannot read CSS variables, and exported
// files carry no stylesheet. The greys and the accent are app.css's tokens.
import type { LayerPolicy } from '../../worker/pipeline-types.ts';

export const INK = {
  text: '#15181e',
  text2: '#3d4451',
  muted: '#6b7280',
  faint: '#9aa1ad',
  border: '#e3e6eb',
  borderStrong: '#d3d8e0',
  grid: '#eef0f3',
  surface2: '#f8f9fb',
  accent: '#2548c8',
  good: '#187a43',
  bad: '#b42318',
} as const;

/**
 * Distinct series colours (layers, domains). The first six keep clear of the α/β threshold colours
 * (orange, teal), which share charts with series.
 */
const CATEGORICAL = ['#2548c8', '#a33ea1', '#c98a04', '#d6336c', '#1d8fd6', '#5c7c12', '#e8590c', '#0c8f6f', '#6b4fd8', '#8a5a2b'];

/** Colour of series i of n: the categorical set while it lasts, then evenly spaced hues. */
export function seriesColor(i: number, n: number): string {
  if (n <= CATEGORICAL.length) return CATEGORICAL[i];
  return `hsl(${Math.round((360 * i) / n + 220) % 360} 62% 44%)`;
}

/** α marks the uneven end of w_m (one expert dominates), β the even end (several experts share). */
export const THRESHOLD_COLOR = { alpha: '#d9480f', beta: '#0b7285' } as const;

export const POLICY_META: Record<LayerPolicy, { label: string; color: string; soft: string }> = {
  top1: { label: 'Top-1', color: '#0c8f6f', soft: '#e3f6f0' },
  top2: { label: 'Top-2', color: '#2548c8', soft: '#eaf0ff' },
  top3: { label: 'Top-3', color: '#a33ea1', soft: '#f7e9f7' },
  dynamic: { label: 'Dynamic', color: '#c2410c', soft: '#fff1e6' },
};

/** Sequential blues for t ∈ [0, 1]: near-white to the accent's dark end. */
export function sequentialBlue(t: number): string {
  const stops: [number, number, number][] = [
    [247, 250, 255],
    [198, 219, 252],
    [107, 152, 240],
    [37, 72, 200],
    [21, 38, 110],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const [r, g, b] = stops[i].map((c, j) => Math.round(c + f * (stops[i + 1][j] - c)));
  return `rgb(${r}, ${g}, ${b})`;
}
