// Pipeline stage 7, Export: the MoE model as a Hugging Face Qwen2-MoE folder (dense layers listed in
// mlp_only_layers, per-layer policies in moefy.json), the run as a shareable link (spec only) or a file
// (spec and results), and what this browser stores for runs.
import { useEffect, useRef, useState } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import { parseRunFile } from '../../state/run-file.ts';
import { fmtBytes } from '../format.ts';
import { PageHead, RunButton, TaskBar } from './common.tsx';

type SavedFile = { name: string; url: string; bytes: number };

export function ExportStage() {
  const distilled = usePipeline((s) => s.results.distill.length > 0);
  const exportModel = usePipeline((s) => s.exportModel);
  const [files, setFiles] = useState<SavedFile[]>([]);
  useEffect(() => () => files.forEach((f) => URL.revokeObjectURL(f.url)), [files]);
  return (
    <>
      <PageHead n={7} name="Export">
        Take the result with you: the MoE model in a format transformers loads, the run as a link anyone can open, or as a file with every result.
      </PageHead>
      <section className="panel" aria-labelledby="export-model-title">
        <div className="panel-head">
          <div>
            <h2 id="export-model-title">MoE model</h2>
            <p className="panel-sub">A Qwen2-MoE folder: config.json, model.safetensors, the tokenizer, and moefy.json with the spec and each layer's policy.</p>
          </div>
        </div>
        <div className="panel-body">
          {!distilled && <p className="muted">Distill at least one layer to export a MoE model.</p>}
          <TaskBar stages={['export']} />
          {files.length > 0 && (
            <ul className="file-list export-files" aria-label="Exported files">
              {files.map((f) => (
                <li key={f.name}>
                  <a href={f.url} download={f.name} className="mono">
                    {f.name}
                  </a>
                  <span className="muted">{fmtBytes(f.bytes)}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div className="panel-foot actions">
          <RunButton
            disabled={!distilled}
            onClick={async () => {
              const out = await exportModel();
              if (out) setFiles(out.map((f) => ({ name: f.name, bytes: f.bytes.byteLength, url: URL.createObjectURL(new Blob([f.bytes as Uint8Array<ArrayBuffer>])) })));
            }}
          >
            Export MoE model
          </RunButton>
          {files.length > 0 && 'showDirectoryPicker' in window && (
            <button className="btn btn-secondary" onClick={() => void saveToFolder(files)}>
              Save all to a folder…
            </button>
          )}
        </div>
      </section>
      <RunPanel />
      <StoragePanel />
    </>
  );
}

async function saveToFolder(files: SavedFile[]): Promise<void> {
  const dir = await (window as unknown as { showDirectoryPicker(o: object): Promise<FileSystemDirectoryHandle> }).showDirectoryPicker({ mode: 'readwrite' });
  for (const f of files) {
    const w = await (await dir.getFileHandle(f.name, { create: true })).createWritable();
    await w.write(await (await fetch(f.url)).blob());
    await w.close();
  }
}

function download(name: string, blob: Blob): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

function RunPanel() {
  const runFile = usePipeline((s) => s.runFile);
  const loadRunFile = usePipeline((s) => s.loadRunFile);
  const input = useRef<HTMLInputElement>(null);
  const [note, setNote] = useState<{ ok: boolean; text: string } | null>(null);
  return (
    <section className="panel" aria-labelledby="run-title">
      <div className="panel-head">
        <div>
          <h2 id="run-title">This run</h2>
          <p className="panel-sub">The link holds the whole spec, seed included: opening it restores every control, and running it again gives the same numbers.</p>
        </div>
      </div>
      <div className="panel-body">
        <div className="share-line">
          <input className="input mono" readOnly value={window.location.href} aria-label="Share link" onFocus={(e) => e.target.select()} />
          <button
            className="btn btn-secondary"
            onClick={() =>
              void navigator.clipboard.writeText(window.location.href).then(
                () => setNote({ ok: true, text: 'Link copied.' }),
                () => setNote({ ok: false, text: 'The browser did not allow copying; select the link and copy it.' }),
              )
            }
          >
            Copy link
          </button>
        </div>
        {note && (
          <p className={note.ok ? 'muted' : 'error-inline'} role="status">
            {note.text}
          </p>
        )}
      </div>
      <div className="panel-foot actions">
        <button className="btn btn-secondary" onClick={() => download('moefy-run.json', new Blob([runFile()], { type: 'application/json' }))}>
          Export run (JSON)
        </button>
        <button className="btn btn-secondary" onClick={() => input.current?.click()}>
          Import run…
        </button>
        <input
          ref={input}
          type="file"
          accept=".json,application/json"
          hidden
          aria-label="Run file"
          onChange={async (e) => {
            const f = e.target.files?.[0];
            e.target.value = '';
            if (!f) return;
            try {
              const { spec, results } = parseRunFile(await f.text(), f.name);
              loadRunFile(spec, results);
              setNote({ ok: true, text: `Loaded ${f.name}: its spec and results are shown on every page.` });
            } catch (err) {
              setNote({ ok: false, text: (err as Error).message });
            }
          }}
        />
      </div>
    </section>
  );
}

function StoragePanel() {
  const storage = usePipeline((s) => s.storage);
  const refresh = usePipeline((s) => s.refreshStorage);
  const remove = usePipeline((s) => s.deleteStored);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  return (
    <section className="panel" aria-labelledby="storage-title" data-testid="storage">
      <div className="panel-head">
        <div>
          <h2 id="storage-title">Stored in this browser</h2>
          <p className="panel-sub">
            Downloaded models, captured activations and checkpoints, kept so a reload resumes
            {storage ? ` (${storage.backend === 'opfs' ? 'origin private file system' : storage.backend})` : ''}.
          </p>
        </div>
        {storage?.usage != null && storage.quota != null && (
          <span className="pill">
            {fmtBytes(storage.usage)} of {fmtBytes(storage.quota)}
          </span>
        )}
      </div>
      <div className="panel-body">
        {!storage || storage.items.length === 0 ? (
          <p className="muted">Nothing stored yet.</p>
        ) : (
          <table className="results" aria-label="Stored items">
            <thead>
              <tr>
                <th>What</th>
                <th>Kind</th>
                <th className="num">Size</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {storage.items.map((it) => (
                <tr key={it.key}>
                  <td className="mono">{it.label}</td>
                  <td>{it.kind}</td>
                  <td className="num mono">{fmtBytes(it.bytes)}</td>
                  <td className="num">
                    <button className="btn btn-secondary btn-sm" onClick={() => void remove(it.key)} aria-label={`Delete ${it.label}`}>
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}
