// "Try it": generate from the loaded model, greedy or sampled (temperature, top-p, seed), streaming the text.
import type { FormEvent } from 'react';
import { useStore, type GenState } from '../../state/store.ts';
import type { ModelSummary } from '../../worker/api.ts';
import { fmtInt } from '../format.ts';

const STOP_TEXT: Record<NonNullable<GenState['stop']>, string> = {
  eos: 'stopped at the end-of-sequence token',
  'max-tokens': 'reached max tokens',
  context: 'reached the end of the context',
  stopped: 'stopped',
};

export function TryIt({ summary }: { summary: ModelSummary }) {
  const gen = useStore((s) => s.gen);
  const exporting = useStore((s) => s.onnx.status === 'running');
  const { setGen, generate, stopGenerate } = useStore.getState();
  const running = gen.status === 'running';
  const sample = gen.mode === 'sample';
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!running) void generate();
  };
  const num = (v: string, lo: number, hi: number, int = false) => {
    const x = Number(v);
    if (!Number.isFinite(x)) return lo;
    return Math.min(hi, Math.max(lo, int ? Math.round(x) : x));
  };

  return (
    <section className="panel" aria-labelledby="try-title" data-gen-status={gen.status}>
      <div className="panel-head">
        <div>
          <h2 id="try-title">Try it</h2>
          <p className="panel-sub">Generate from the loaded model on the GPU. An empty prompt starts from the BOS token.</p>
        </div>
      </div>
      <form className="panel-body try-grid" onSubmit={submit}>
        <div className="try-inputs">
          <label className="field-label" htmlFor="gen-prompt">
            Prompt
          </label>
          <textarea
            id="gen-prompt"
            className="input textarea"
            rows={2}
            placeholder="Once upon a time"
            value={gen.prompt}
            disabled={running}
            onChange={(e) => setGen({ prompt: e.target.value })}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && (e.metaKey || e.ctrlKey)) {
                e.preventDefault();
                if (!running) void generate();
              }
            }}
          />
          <div className="gen-controls">
            <label className="field small">
              <span className="field-label">Max tokens</span>
              <input
                className="input mono"
                type="number"
                min={1}
                max={summary.contextLength - 1}
                value={gen.maxTokens}
                disabled={running}
                onChange={(e) => setGen({ maxTokens: num(e.target.value, 1, summary.contextLength - 1, true) })}
              />
            </label>
            <div className="field">
              <span className="field-label" id="decoding-label">
                Decoding
              </span>
              <div className="segmented" role="radiogroup" aria-labelledby="decoding-label">
                {(['greedy', 'sample'] as const).map((m) => (
                  <button
                    key={m}
                    type="button"
                    role="radio"
                    aria-checked={gen.mode === m}
                    className={gen.mode === m ? 'on' : ''}
                    disabled={running}
                    onClick={() => setGen({ mode: m })}
                  >
                    {m === 'greedy' ? 'Greedy' : 'Sample'}
                  </button>
                ))}
              </div>
            </div>
            <label className={`field small ${sample ? '' : 'is-off'}`}>
              <span className="field-label">Temperature</span>
              <input
                className="input mono"
                type="number"
                step={0.1}
                min={0.05}
                max={2}
                value={gen.temperature}
                disabled={running || !sample}
                onChange={(e) => setGen({ temperature: num(e.target.value, 0.05, 2) })}
              />
            </label>
            <label className={`field small ${sample ? '' : 'is-off'}`}>
              <span className="field-label">Top-p</span>
              <input
                className="input mono"
                type="number"
                step={0.05}
                min={0.05}
                max={1}
                value={gen.topP}
                disabled={running || !sample}
                onChange={(e) => setGen({ topP: num(e.target.value, 0.05, 1) })}
              />
            </label>
            <label className={`field small ${sample ? '' : 'is-off'}`}>
              <span className="field-label">Seed</span>
              <input
                className="input mono"
                type="number"
                step={1}
                min={0}
                value={gen.seed}
                disabled={running || !sample}
                onChange={(e) => setGen({ seed: num(e.target.value, 0, 2 ** 32 - 1, true) })}
              />
            </label>
            <div className="gen-go">
              {running ? (
                <button type="button" className="btn btn-secondary" onClick={stopGenerate}>
                  <span className="stop-square" aria-hidden="true" /> Stop
                </button>
              ) : (
                <button type="submit" className="btn btn-primary" disabled={exporting}>
                  Generate
                </button>
              )}
            </div>
          </div>
        </div>
        <Output gen={gen} />
      </form>
    </section>
  );
}

function Output({ gen }: { gen: GenState }) {
  const running = gen.status === 'running';
  const hasPrompt = gen.promptText !== '' && gen.text.startsWith(gen.promptText);
  const rest = hasPrompt ? gen.text.slice(gen.promptText.length) : gen.text;
  return (
    <div className="gen-out-wrap">
      <div className="gen-output" data-testid="gen-output" aria-live="polite" aria-busy={running}>
        {gen.status === 'idle' ? (
          <span className="gen-placeholder">The generated text appears here.</span>
        ) : (
          <>
            {hasPrompt && <span className="gen-prompt">{gen.promptText}</span>}
            <span className="gen-text">{rest}</span>
            {running && <span className="caret" aria-hidden="true" />}
          </>
        )}
      </div>
      <div className="gen-meta" data-testid="gen-meta">
        {gen.status === 'running' && <span className="muted">Generating… {fmtInt(gen.tokens)} tokens</span>}
        {gen.status === 'done' && (
          <span className="muted">
            {fmtInt(gen.tokens)} tokens · {gen.decodeTokensPerS !== null ? `${gen.decodeTokensPerS.toFixed(1)} tokens/s` : ''} · {gen.stop ? STOP_TEXT[gen.stop] : ''}
          </span>
        )}
        {gen.status === 'error' && (
          <span className="error-inline" role="alert">
            {gen.error}
          </span>
        )}
      </div>
    </div>
  );
}
