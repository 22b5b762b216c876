// The loaded model: its blueprint, size and GPU memory, where it came from, and Export ONNX / Unload.
import { useStore } from '../../state/store.ts';
import type { ModelSummary } from '../../worker/api.ts';
import { fmtBytes, fmtCount, fmtInt } from '../format.ts';

const ARCH_NAMES: Record<string, string> = { llama: 'Llama', mistral: 'Mistral', qwen2: 'Qwen2' };

export function ModelCard({ summary }: { summary: ModelSummary }) {
  const c = summary.config;
  const gqa = c.nKvHeads < c.nHeads;
  const stats: { label: string; value: string; note?: string; title?: string }[] = [
    { label: 'Parameters', value: fmtCount(summary.params), title: `${fmtInt(summary.params)} parameters` },
    { label: 'Layers', value: fmtInt(c.nLayers) },
    { label: 'Hidden size', value: fmtInt(c.dim), note: `FFN ${fmtInt(c.hiddenDim)}` },
    { label: 'Heads Q / KV', value: `${c.nHeads} / ${c.nKvHeads}`, note: `${gqa ? 'GQA · ' : ''}head dim ${c.headDim}` },
    { label: 'Vocabulary', value: fmtInt(c.vocabSize), note: summary.tokenizer.vocabSize !== c.vocabSize ? `tokenizer ${fmtInt(summary.tokenizer.vocabSize)}` : undefined },
    {
      label: 'Context',
      value: fmtInt(c.maxSeqLen),
      note: summary.contextLength < c.maxSeqLen ? `KV cache holds ${fmtInt(summary.contextLength)}` : 'tokens',
    },
  ];
  return (
    <section className="panel" aria-labelledby="card-title" data-testid="model-card">
      <div className="panel-head">
        <div className="card-title">
          <span className="model-icon" aria-hidden="true">
            <svg viewBox="0 0 20 20">
              <rect x="2.5" y="2.5" width="6" height="6" rx="1.5" />
              <rect x="11.5" y="2.5" width="6" height="6" rx="1.5" />
              <rect x="2.5" y="11.5" width="6" height="6" rx="1.5" />
              <rect x="11.5" y="11.5" width="6" height="6" rx="1.5" />
            </svg>
          </span>
          <div>
            <h2 id="card-title" className="mono-title">
              {summary.name}
            </h2>
            <p className="panel-sub">
              {ARCH_NAMES[summary.arch] ?? summary.arch} · {summary.format} · loaded in {summary.loadSeconds.toFixed(1)} s
            </p>
          </div>
        </div>
        <CardActions />
      </div>
      <div className="panel-body">
        <dl className="stats">
          {stats.map((s) => (
            <div className="stat" key={s.label} title={s.title}>
              <dt>{s.label}</dt>
              <dd>
                <span className="stat-value">{s.value}</span>
                {s.note && <span className="stat-note">{s.note}</span>}
              </dd>
            </div>
          ))}
        </dl>
        <div className="card-grid">
          <div>
            <h3 className="subhead">GPU memory</h3>
            <MemoryBar weights={summary.weightsBytes} runState={summary.runStateBytes} />
          </div>
          <div>
            <h3 className="subhead">Details</h3>
            <dl className="kv kv-compact">
              <dt>Architecture</dt>
              <dd>
                {ARCH_NAMES[summary.arch] ?? summary.arch}
                {c.tiedEmbeddings ? ', tied embeddings' : ''}
                {c.qkvBias ? ', q/k/v biases' : ''}
              </dd>
              <dt>RoPE</dt>
              <dd>
                θ = {fmtInt(c.ropeTheta)}, {c.ropeStyle === 'half' ? 'rotate-half pairs' : 'interleaved pairs'}
              </dd>
              <dt>RMSNorm ε</dt>
              <dd className="mono">{c.normEps.toExponential(0)}</dd>
              <dt>Stored as</dt>
              <dd>{summary.storedDtypes.join(', ')} → f32 on the GPU</dd>
              <dt>Tokenizer</dt>
              <dd>
                <span className="mono">{baseName(summary.tokenizer.name)}</span> · {fmtInt(summary.tokenizer.vocabSize)} tokens · BOS {summary.tokenizer.bosId}, EOS{' '}
                {summary.tokenizer.eosId}
              </dd>
              <dt>Files</dt>
              <dd>
                <ul className="file-list">
                  {summary.files.map((f) => (
                    <li key={f.name}>
                      <span className="mono">{baseName(f.name)}</span> <span className="muted">{fmtBytes(f.size)}</span>
                    </li>
                  ))}
                </ul>
                {summary.cache && <span className="muted">Downloaded into the {summary.cache} cache</span>}
              </dd>
            </dl>
          </div>
        </div>
        <ExportStatus />
      </div>
    </section>
  );
}

function MemoryBar({ weights, runState }: { weights: number; runState: number }) {
  const total = weights + runState;
  const w = total ? (100 * weights) / total : 0;
  return (
    <div className="membar-wrap">
      <div className="membar-total">
        <span className="stat-value">{fmtBytes(total)}</span>
        <span className="muted"> in total</span>
      </div>
      <div className="membar" aria-hidden="true">
        <span className="membar-w" style={{ width: `${w}%` }} />
        <span className="membar-r" style={{ width: `${100 - w}%` }} />
      </div>
      <ul className="legend">
        <li>
          <span className="swatch swatch-w" />
          Weights (f32) <span className="mono">{fmtBytes(weights)}</span>
        </li>
        <li>
          <span className="swatch swatch-r" />
          Run state (activations, KV cache) <span className="mono">{fmtBytes(runState)}</span>
        </li>
      </ul>
    </div>
  );
}

function CardActions() {
  const onnx = useStore((s) => s.onnx);
  const busy = useStore((s) => s.gen.status === 'running');
  const { exportOnnx, unloadModel } = useStore.getState();
  const running = onnx.status === 'running';
  const save = async () => {
    const buf = await exportOnnx();
    if (buf) saveFile(buf, 'model.onnx', 'application/octet-stream');
  };
  return (
    <div className="controls">
      <button className="btn btn-secondary" onClick={() => void unloadModel()} disabled={running}>
        Unload
      </button>
      <button className="btn btn-primary" onClick={() => void save()} disabled={running || busy}>
        {running ? <span className="spinner" aria-hidden="true" /> : <DownloadIcon />}
        Export ONNX
      </button>
    </div>
  );
}

function ExportStatus() {
  const onnx = useStore((s) => s.onnx);
  if (onnx.status === 'idle') return null;
  if (onnx.status === 'running') return <p className="export-line muted">Building model.onnx from the checkpoint’s weights…</p>;
  if (onnx.status === 'done') {
    return (
      <p className="export-line" data-testid="export-status">
        <span className="tag tag-pass">Saved</span> model.onnx, {fmtBytes(onnx.bytes ?? 0)} · ONNX opset 17, f32 weights · <code>input_ids</code> int64 [1, T] → <code>logits</code> [1, T, vocab]
      </p>
    );
  }
  return (
    <div className="callout callout-bad export-line" role="alert">
      <div className="callout-title">Export failed</div>
      <p>{onnx.error}</p>
    </div>
  );
}

function DownloadIcon() {
  return (
    <svg className="btn-icon" viewBox="0 0 16 16" aria-hidden="true">
      <path d="M8 2.5v7m-3-3 3 3 3-3M3 11.5v1a1 1 0 0 0 1 1h8a1 1 0 0 0 1-1v-1" />
    </svg>
  );
}

/** Hands bytes to the browser as a download. */
function saveFile(buf: ArrayBuffer, name: string, type: string): void {
  const url = URL.createObjectURL(new Blob([buf], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function baseName(name: string): string {
  return name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
}
