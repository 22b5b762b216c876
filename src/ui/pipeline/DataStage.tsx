// Pipeline stage 2, Data: the text LaDiMo calibrates on (§5.1: 100K tokens of the model's own domain) and
// evaluates on: the Brown Corpus built in (15 genres), or the user's own .txt files.
import { useRef } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import { fmtBytes } from '../format.ts';
import { PageHead } from './common.tsx';
import { SpecField } from './SpecField.tsx';

export function DataStage() {
  const data = usePipeline((s) => s.data);
  const setData = usePipeline((s) => s.setData);
  const input = useRef<HTMLInputElement>(null);
  const domains = data.summary?.domains ?? [];
  return (
    <>
      <PageHead n={2} name="Data">
        The text the experts are distilled on and the model is evaluated on. Calibration windows are taken from every chosen domain in turn;
        so are the evaluation windows, from the chosen domains' validation text.
      </PageHead>
      <section className="panel" aria-labelledby="data-title" data-data-status={data.status}>
        <div className="panel-head">
          <div>
            <h2 id="data-title">Calibration and evaluation text</h2>
            <p className="panel-sub">One document per line. Files named &lt;domain&gt;.train.txt and &lt;domain&gt;.valid.txt pair up; any other .txt is split 90/10.</p>
          </div>
          {data.status === 'ready' && <span className="pill pill-good">{domains.length} domains</span>}
        </div>
        <div className="panel-body data-sources">
          <button className="source-card" onClick={() => void setData({ kind: 'builtin', corpus: 'brown' })} disabled={data.status === 'loading'}>
            <span className="source-card-title">Use the Brown Corpus</span>
            <span className="muted">Built in: 1.1M words of American English in 15 genres, from news to science fiction.</span>
          </button>
          <button className="source-card" onClick={() => input.current?.click()} disabled={data.status === 'loading'}>
            <span className="source-card-title">Choose text files…</span>
            <span className="muted">Your own domains, e.g. code.train.txt and code.valid.txt.</span>
          </button>
          <input
            ref={input}
            type="file"
            accept=".txt,text/plain"
            multiple
            hidden
            aria-label="Text files"
            onChange={(e) => {
              const files = [...(e.target.files ?? [])];
              e.target.value = '';
              if (files.length) void setData({ kind: 'files', files });
            }}
          />
        </div>
        {data.status === 'loading' && (
          <div className="panel-body muted">
            <span className="spinner spinner-sm" aria-hidden="true" /> Reading the text…
          </div>
        )}
        {data.status === 'error' && (
          <div className="panel-body">
            <div className="callout callout-bad" role="alert">
              <div className="callout-title">Could not use that text</div>
              <p>{data.error}</p>
            </div>
          </div>
        )}
        {data.summary && (
          <div className="panel-body">
            <div className="table-wrap">
              <table className="results data-table" aria-label="Domains">
                <thead>
                  <tr>
                    <th>Domain</th>
                    <th className="num">Train</th>
                    <th className="num">Validation</th>
                  </tr>
                </thead>
                <tbody>
                  {domains.map((d) => (
                    <tr key={d.name}>
                      <td className="mono">{d.name}</td>
                      <td className="num mono">{fmtBytes(d.trainBytes)}</td>
                      <td className="num mono">{fmtBytes(d.validBytes)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <p className="muted data-label">Source: {data.summary.label}</p>
          </div>
        )}
      </section>
      <section className="panel" aria-labelledby="calib-title">
        <div className="panel-head">
          <div>
            <h2 id="calib-title">How much, and which</h2>
            <p className="panel-sub">LaDiMo captures about 100K tokens per layer (§5.1). Fewer make a quick demo; more make better experts.</p>
          </div>
        </div>
        <div className="panel-body field-grid">
          <SpecField k="calibration.domains" />
          <SpecField k="calibration.tokens" />
          <SpecField k="eval.domain" choices={domains.length ? ['all', ...domains.map((d) => d.name)] : undefined} />
        </div>
        <div className="panel-foot actions">
          <a className="btn btn-primary" href="#construct">
            Next: construct experts
          </a>
        </div>
      </section>
    </>
  );
}
