// Pipeline stage 1, Model: load a dense checkpoint, see what it is, try it, export it.
import { useEffect } from 'react';
import { useStore } from '../../state/store.ts';
import { ModelCard } from './ModelCard.tsx';
import { SourcePanel } from './SourcePanel.tsx';
import { TryIt } from './TryIt.tsx';

export function ModelStage() {
  const summary = useStore((s) => (s.model.status === 'ready' ? s.model.summary : null));
  const refreshCache = useStore((s) => s.refreshCache);
  useEffect(() => {
    void refreshCache();
  }, [refreshCache]);
  useEffect(() => {
    // A file dropped outside the drop zone would otherwise replace the page with the file.
    const block = (e: DragEvent) => e.preventDefault();
    window.addEventListener('dragover', block);
    window.addEventListener('drop', block);
    return () => {
      window.removeEventListener('dragover', block);
      window.removeEventListener('drop', block);
    };
  }, []);

  return (
    <>
      <div className="page-head">
        <div className="crumbs">
          Pipeline <span aria-hidden="true">/</span> 1 · Model
        </div>
        <h1>Model</h1>
        <p className="lead">
          Load the dense LLaMA-family model to turn into a Mixture of Experts. Its weights are checked against its config, converted to f32 and
          uploaded to the GPU; everything runs in this browser.
        </p>
      </div>
      <SourcePanel />
      {summary && (
        <>
          <ModelCard summary={summary} />
          <TryIt summary={summary} />
        </>
      )}
    </>
  );
}
