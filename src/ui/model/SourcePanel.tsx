// Where the checkpoint comes from: a drop zone with file and folder pickers, a URL, or a Hugging Face repo.
// While a load runs, its progress takes the drop zone's place; a failed load shows the error panel.
import { useState, type DragEvent, type FormEvent } from 'react';
import { useStore } from '../../state/store.ts';
import { fmtBytes } from '../format.ts';
import { ErrorPanel } from './ErrorPanel.tsx';
import { fromDrop, fromInput, type PickedFiles } from './files.ts';
import { LoadProgress } from './LoadProgress.tsx';

export function SourcePanel() {
  const model = useStore((s) => s.model);
  const gpu = useStore((s) => s.gpu);
  const checking = useStore((s) => s.check.status === 'running');
  const { loadModel, loadDemoModel, cancelLoad, dismissModelError } = useStore.getState();
  const loading = model.status === 'loading';
  const blocked = checking ? 'A kernel check is running on the GPU: wait for it to finish (or cancel it) before loading a model.' : null;

  const loadFiles = (p: PickedFiles | null) => {
    if (p && !blocked) void loadModel(p.source, p.label);
  };

  return (
    <section className="panel" aria-labelledby="source-title" data-model-status={model.status}>
      <div className="panel-head">
        <div>
          <h2 id="source-title">Load a checkpoint</h2>
          <p className="panel-sub">From this computer, a URL or the Hugging Face Hub · Llama, Mistral and Qwen2 architectures</p>
        </div>
        {model.status === 'ready' && <span className="pill pill-good">Model loaded</span>}
        {loading && <span className="pill pill-accent">Loading…</span>}
      </div>
      <div className="panel-body source-body">
        {(gpu.status === 'unavailable' || gpu.status === 'error') && (
          <div className="callout callout-warn callout-flush">
            <div className="callout-title">WebGPU is not available, so models cannot be uploaded</div>
            {gpu.message}
          </div>
        )}
        {blocked && <div className="callout callout-warn callout-flush">{blocked}</div>}
        {model.notice && (
          <div className="callout callout-info" role="status">
            {model.notice}{' '}
            <button className="link-btn" onClick={dismissModelError}>
              Dismiss
            </button>
          </div>
        )}
        {loading ? (
          <LoadProgress model={model} onCancel={cancelLoad} />
        ) : (
          <DropZone disabled={!!blocked} compact={model.status === 'ready'} onFiles={loadFiles} />
        )}
        {(model.status === 'error' || model.status === 'cancelled') && <ErrorPanel model={model} onDismiss={dismissModelError} />}
        <div className="source-grid">
          <UrlForm disabled={loading || !!blocked} />
          <HubForm disabled={loading || !!blocked} />
        </div>
        <p className="muted">
          The workbench opens with its demo model, a small LLaMA that MoEfy trained on the Brown Corpus (<code>npm run train:demo</code>).{' '}
          <button className="link-btn" disabled={loading || !!blocked} onClick={() => void loadDemoModel()}>
            Load the demo model
          </button>
        </p>
      </div>
      <CacheFoot />
    </section>
  );
}

// ---------------------------------------------------------------- local files

/** `compact` once a model is loaded: one row, so the model card stays in view. */
function DropZone({ disabled, compact, onFiles }: { disabled: boolean; compact: boolean; onFiles(p: PickedFiles | null): void }) {
  const [over, setOver] = useState(false);
  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    if (!disabled) onFiles(await fromDrop(e.dataTransfer));
  };
  return (
    <div
      className={`dropzone ${compact ? 'compact' : ''} ${over ? 'is-over' : ''} ${disabled ? 'is-disabled' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        e.dataTransfer.dropEffect = disabled ? 'none' : 'copy';
        setOver(true);
      }}
      onDragLeave={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false);
      }}
      onDrop={(e) => void onDrop(e)}
      data-testid="dropzone"
    >
      <svg className="dropzone-icon" viewBox="0 0 40 40" aria-hidden="true">
        <path d="M6 13a3 3 0 0 1 3-3h7l3 3h12a3 3 0 0 1 3 3v13a3 3 0 0 1-3 3H9a3 3 0 0 1-3-3z" />
        <path d="M20 27v-9m-4 4 4-4 4 4" />
      </svg>
      <div className="dropzone-text">
        <div className="dropzone-title">Drop a model folder or file here</div>
        {compact ? (
          <p className="dropzone-sub">Loading another model replaces the one on the GPU.</p>
        ) : (
          <p className="dropzone-sub">
            A Hugging Face folder (<code>config.json</code>, <code>model.safetensors</code>, <code>tokenizer.json</code>), a <code>.gguf</code> file, or a
            llama2.c model <code>.bin</code> with its tokenizer <code>.bin</code>. Files are read in place and never leave this computer.
          </p>
        )}
      </div>
      <div className="dropzone-actions">
        <label className={`btn btn-primary file-btn ${disabled ? 'disabled' : ''}`}>
          <input
            type="file"
            multiple
            aria-label="Choose files…"
            disabled={disabled}
            onChange={(e) => {
              onFiles(fromInput(e.target.files));
              e.target.value = '';
            }}
          />
          Choose files…
        </label>
        <label className={`btn btn-secondary file-btn ${disabled ? 'disabled' : ''}`}>
          <input
            type="file"
            aria-label="Choose folder…"
            disabled={disabled}
            ref={(el) => el?.setAttribute('webkitdirectory', '')}
            onChange={(e) => {
              onFiles(fromInput(e.target.files));
              e.target.value = '';
            }}
          />
          Choose folder…
        </label>
      </div>
    </div>
  );
}

// ---------------------------------------------------------------- network

function UrlForm({ disabled }: { disabled: boolean }) {
  const url = useStore((s) => s.model.url);
  const { setModelField, loadModel } = useStore.getState();
  const urls = url.split(/[\s,]+/).filter(Boolean);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!urls.length || disabled) return;
    const names = urls.map((u) => decodeURIComponent(u.split(/[?#]/)[0].split('/').pop() || u));
    void loadModel({ kind: 'url', urls }, names.join(' + '));
  };
  return (
    <form className="source-form" onSubmit={submit}>
      <label className="field-label" htmlFor="model-url">
        From a URL
      </label>
      <div className="input-row">
        <input
          id="model-url"
          className="input mono"
          type="text"
          inputMode="url"
          spellCheck={false}
          autoComplete="off"
          placeholder="https://…/model.gguf"
          value={url}
          disabled={disabled}
          onChange={(e) => setModelField({ url: e.target.value })}
        />
        <button className="btn btn-secondary" type="submit" disabled={disabled || !urls.length}>
          Load
        </button>
      </div>
      <p className="field-hint">A .gguf, or every file of a checkpoint separated by spaces. The server must allow CORS and Range requests.</p>
    </form>
  );
}

function HubForm({ disabled }: { disabled: boolean }) {
  const repo = useStore((s) => s.model.repo);
  const { setModelField, loadModel } = useStore.getState();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const id = repo.trim();
    if (!id || disabled) return;
    void loadModel({ kind: 'hub', repo: id }, id.replace(/^https?:\/\/(www\.)?(huggingface|hf)\.co\//, ''));
  };
  return (
    <form className="source-form" onSubmit={submit}>
      <label className="field-label" htmlFor="model-repo">
        From the Hugging Face Hub
      </label>
      <div className="input-row">
        <input
          id="model-repo"
          className="input mono"
          type="text"
          spellCheck={false}
          autoComplete="off"
          placeholder="HuggingFaceTB/SmolLM2-135M"
          value={repo}
          disabled={disabled}
          onChange={(e) => setModelField({ repo: e.target.value })}
        />
        <button className="btn btn-secondary" type="submit" disabled={disabled || !repo.trim()}>
          Load
        </button>
      </div>
      <p className="field-hint">A repo id or its huggingface.co URL. Takes the safetensors weights (or a GGUF) with config.json and tokenizer.json.</p>
    </form>
  );
}

function CacheFoot() {
  const cache = useStore((s) => s.cache);
  const loading = useStore((s) => s.model.status === 'loading');
  const clearCache = useStore((s) => s.clearCache);
  const where = cache ? (cache.kind === 'memory' ? 'in memory until this page closes' : `in this browser (${cache.kind})`) : 'in this browser';
  const fileOf = (key: string) => key.replace(/\.part-\d+$|\.partmeta$/, '');
  const files = cache ? new Set(cache.entries.map((e) => fileOf(e.key))).size : 0;
  const inUse = cache ? new Set(cache.entries.filter((e) => e.inUse).map((e) => fileOf(e.key))).size : 0;
  return (
    <div className="panel-foot">
      <span>
        Downloads are kept {where}: a model downloads once, and an interrupted download resumes where it stopped.
        {cache && files > 0 && (
          <>
            {' '}
            Cached: <strong>{files === 1 ? '1 file' : `${files} files`}</strong>, {fmtBytes(cache.bytes)}
            {inUse > 0 ? ` (${inUse === files ? (files === 1 ? 'it holds' : 'they hold') : `${inUse} of them hold`} the loaded model)` : ''}.
          </>
        )}
      </span>
      {cache && files > inUse && (
        <button className="link-btn" onClick={() => void clearCache()} disabled={loading}>
          Clear downloads
        </button>
      )}
    </div>
  );
}
