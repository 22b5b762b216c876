// The tooltip card the charts share (HTML over the chart; it is never part of an exported figure).
import type { ReactNode } from 'react';

export interface TipRow {
  label: ReactNode;
  value: string;
  color?: string;
}

export function ChartTip({ title, rows }: { title: ReactNode; rows: readonly TipRow[] }) {
  return (
    <div className="chart-tip">
      <div className="chart-tip-title">{title}</div>
      {rows.map((r, i) => (
        <div className="chart-tip-row" key={i}>
          {r.color && <span className="chart-tip-swatch" style={{ background: r.color }} />}
          <span>{r.label}</span>
          <span className="mono">{r.value}</span>
        </div>
      ))}
    </div>
  );
}
