// A legend drawn in SVG (inside a chart's own <svg>), so exported figures keep it. Entries flow left to
// right and wrap; the chart reserves `legendHeight` above its plot.
import type { ReactNode } from 'react';
import { INK } from './palette.ts';

export interface LegendEntry {
  /** plain text, or SVG text content (tspans) with `text` giving its plain form for layout */
  label: ReactNode;
  text: string;
  color: string;
  mark: 'line' | 'dash' | 'box' | 'dot';
}

const ROW = 18;
const MARK_W = 18;
/** Average advance of a 12 px UI-font character: enough to lay entries out without measuring text. */
export const CHAR_W = 6.6;
const GAP = 16;

interface Placed {
  entry: LegendEntry;
  x: number;
  y: number;
}

function layout(entries: readonly LegendEntry[], width: number): { placed: Placed[]; height: number } {
  const placed: Placed[] = [];
  let x = 0;
  let y = 0;
  for (const entry of entries) {
    const w = MARK_W + 6 + entry.text.length * CHAR_W;
    if (x > 0 && x + w > width) {
      x = 0;
      y += ROW;
    }
    placed.push({ entry, x, y });
    x += w + GAP;
  }
  return { placed, height: entries.length ? y + ROW : 0 };
}

/** The height the legend takes at this width. */
export function legendHeight(entries: readonly LegendEntry[], width: number): number {
  return layout(entries, width).height;
}

export function SvgLegend({ entries, x, y, width }: { entries: readonly LegendEntry[]; x: number; y: number; width: number }) {
  const { placed } = layout(entries, width);
  return (
    <g className="chart-legend" transform={`translate(${x}, ${y})`}>
      {placed.map(({ entry, x: ex, y: ey }) => (
        <g key={entry.text} transform={`translate(${ex}, ${ey})`}>
          <LegendMark mark={entry.mark} color={entry.color} />
          <text x={MARK_W + 6} y={ROW / 2} dominantBaseline="central" fontSize={12} fill={INK.text2}>
            {entry.label}
          </text>
        </g>
      ))}
    </g>
  );
}

function LegendMark({ mark, color }: { mark: LegendEntry['mark']; color: string }) {
  const cy = ROW / 2;
  switch (mark) {
    case 'line':
      return <line x1={0} x2={MARK_W} y1={cy} y2={cy} stroke={color} strokeWidth={2.5} strokeLinecap="round" />;
    case 'dash':
      return <line x1={0} x2={MARK_W} y1={cy} y2={cy} stroke={color} strokeWidth={1.75} strokeDasharray="4 3" />;
    case 'box':
      return <rect x={2} y={cy - 6} width={14} height={12} rx={3} fill={color} />;
    case 'dot':
      return <circle cx={MARK_W / 2} cy={cy} r={5} fill={color} stroke="#fff" strokeWidth={1.5} />;
  }
}
