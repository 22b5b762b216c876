// The card every chart sits in: title, a one-line caption, the figure, and downloads (PNG, SVG, CSV).
// The root carries data-chart="<id>" and data-points="<n>" so tests can find a chart and see it has data;
// the figure is role="img" with a text summary as its accessible name.
import { useId, useState, type ReactNode } from 'react';
import { chartFileName, toCsv, type CsvTable } from './export.ts';
import { figureSvg, saveBlob, svgToPng } from './figure-export.ts';
import { useWidth } from './use-width.ts';
import './charts.css';

export interface ChartFrameProps {
  /** data-chart, and the file names unless `file` is given */
  id: string;
  /** the files' base name: 'loss-curves' → moefy-loss-curves.png */
  file?: string;
  title: string;
  caption: ReactNode;
  /** data points drawn; 0 shows the empty state */
  points: number;
  /** the figure's accessible name: what it shows, in words and numbers */
  summary: string;
  csv: CsvTable;
  /** the pipeline stage whose results fill the chart, for the empty state */
  stage: string;
  /** controls above the figure (a layer selector); not exported */
  controls?: ReactNode;
  /** content below the figure (a table); not in the PNG/SVG, its data belongs in the CSV */
  footer?: ReactNode;
  /** draws the figure at the given width (px); all its text must be SVG, so the files keep it */
  children: (width: number) => ReactNode;
}

type Format = 'png' | 'svg' | 'csv';

export function ChartFrame({ id, file = id, title, caption, points, summary, csv, stage, controls, footer, children }: ChartFrameProps) {
  const figure = useWidth<HTMLDivElement>();
  const [error, setError] = useState<string | null>(null);
  const empty = points === 0;
  const titleId = useId();

  const download = async (format: Format) => {
    setError(null);
    try {
      const name = chartFileName(file, format);
      if (format === 'csv') return saveBlob(new Blob([toCsv(csv)], { type: 'text/csv;charset=utf-8' }), name);
      if (!figure.el) throw new Error('the chart is not on screen');
      const svg = figureSvg(figure.el);
      saveBlob(format === 'svg' ? new Blob([svg.markup], { type: 'image/svg+xml' }) : await svgToPng(svg), name);
    } catch (e) {
      setError(`Could not save ${format.toUpperCase()}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  return (
    <section className="panel chart-card" data-chart={id} data-points={points} aria-labelledby={titleId}>
      <div className="panel-head chart-head">
        <div className="chart-heading">
          <h2 id={titleId}>{title}</h2>
          <p className="panel-sub">{caption}</p>
        </div>
        <div className="chart-downloads" role="group" aria-label={`Download ${title}`}>
          <svg className="chart-download-icon" viewBox="0 0 16 16" aria-hidden="true">
            <path d="M8 2.5v7m-3-3 3 3 3-3M3 11.5v1a1 1 0 0 0 1 1h8a1 1 0 0 0 1-1v-1" />
          </svg>
          {(['png', 'svg', 'csv'] as const).map((f) => (
            <button
              key={f}
              type="button"
              className="chart-download"
              disabled={empty}
              onClick={() => void download(f)}
              aria-label={`Download ${title} as ${f.toUpperCase()}`}
              title={chartFileName(file, f)}
            >
              {f.toUpperCase()}
            </button>
          ))}
        </div>
      </div>
      <div className="panel-body chart-body">
        {empty ? (
          <div className="empty chart-empty">
            <div className="empty-title">No data yet — run the {stage} stage</div>
            <div>This chart fills in as the stage reports its results.</div>
          </div>
        ) : (
          <>
            {controls && <div className="chart-controls">{controls}</div>}
            <div className="chart-figure" ref={figure.ref} role="img" aria-label={summary}>
              {figure.width > 0 && children(figure.width)}
            </div>
            {footer}
          </>
        )}
        {error && (
          <p className="chart-error" role="alert">
            {error}
          </p>
        )}
      </div>
    </section>
  );
}
