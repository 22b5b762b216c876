// One look for every recharts axis, grid and axis title, in the app's greys.
import { INK } from './palette.ts';

export const AXIS = {
  stroke: INK.borderStrong,
  tick: { fontSize: 11.5, fill: INK.muted },
  tickLine: { stroke: INK.borderStrong },
  tickSize: 4,
} as const;

export const GRID = { stroke: INK.grid, vertical: false } as const;

const TITLE = { fill: INK.text2, fontSize: 12, fontWeight: 500 } as const;

/** The x axis title, centred under the ticks. */
export function xTitle(value: string) {
  return { value, position: 'bottom' as const, offset: 6, ...TITLE };
}

/** The y axis title, rotated, left of the ticks. */
export function yTitle(value: string) {
  return { value, angle: -90, position: 'insideLeft' as const, style: { textAnchor: 'middle' as const }, offset: 2, dy: 0, ...TITLE };
}
