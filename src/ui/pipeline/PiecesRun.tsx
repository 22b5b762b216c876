// The run panel of the methods that keep finished pieces (DIVE, LLaMA-MoE v2, Mixture-of-Depths): what
// the run waits for, what is stored of this spec's run, the task bar, Run (resuming from the stored
// pieces), opening a `moefy run --json` file instead, and deleting the stored run.
import { useRef, useState, type ReactNode } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import { useStore } from '../../state/store.ts';
import type { TaskStage } from '../../worker/pipeline-types.ts';
import { RunButton, TaskBar, Waiting } from './common.tsx';

export interface PiecesRunProps {
  stage: Extract<TaskStage, 'dive' | 'llamaMoeV2' | 'mod'>;
  /** 'DIVE': in the buttons */
  name: string;
  /** what one piece is, plural: 'finished pieces', 'finished constructions' */
  pieces: string;
  /** why the run needs the model, and the text */
  needsModel: string;
  needsData: string;
  /** whether this tab shows the results of its own run */
  showsRun: boolean;
  /** reads a results file and shows it; throws with the file's name and what is wrong */
  open(text: string, file: string): void;
  /** one finished piece, as the subject of "… is stored in this browser": 'Each finished variant (tuned and scored)' */
  children: ReactNode;
}

export function PiecesRun({ stage, name, pieces, needsModel, needsData, showsRun, open, children }: PiecesRunProps) {
  const modelReady = useStore((s) => s.model.status === 'ready');
  const dataReady = usePipeline((s) => s.data.status === 'ready');
  const stored = usePipeline((s) => s.piecesResume);
  const run = usePipeline((s) => s.run);
  const deleteStored = usePipeline((s) => s.deleteStored);
  const running = usePipeline((s) => s.task.status === 'running' && s.task.stage === stage);
  const input = useRef<HTMLInputElement>(null);
  const [fileError, setFileError] = useState<string | null>(null);
  const read = async (f: File) => {
    try {
      setFileError(null);
      open(await f.text(), f.name);
    } catch (e) {
      setFileError((e as Error).message);
    }
  };
  return (
    <section className="panel" aria-labelledby={`${stage}-run-title`}>
      <div className="panel-head">
        <div>
          <h2 id={`${stage}-run-title`}>Run</h2>
          <p className="panel-sub">
            {children} is stored in this browser, so Cancel or a reload resumes at the next. A run made with <code>moefy run --json</code> opens here
            too.
          </p>
        </div>
      </div>
      <div className="panel-body">
        {!modelReady ? (
          <Waiting title="No model loaded" href="#model" action="Load a model">
            {needsModel}
          </Waiting>
        ) : !dataReady ? (
          <Waiting title="No text chosen" href="#data" action="Choose text">
            {needsData}
          </Waiting>
        ) : null}
        {stored && !running && !showsRun && (
          <div className="callout callout-info resume-offer" role="status">
            <div className="callout-title">Part of this spec's run is stored</div>
            <p>
              {stored.pieces} {pieces} are in this browser's storage: running reads them back and computes only what is missing.
            </p>
          </div>
        )}
        {fileError && (
          <div className="callout callout-bad" role="alert">
            <p>{fileError}</p>
          </div>
        )}
        <TaskBar stages={[stage]} />
      </div>
      <div className="panel-foot actions">
        <RunButton onClick={() => void run(stage)} disabled={!modelReady || !dataReady}>
          {stored ? `Run ${name} (resume)` : `Run ${name}`}
        </RunButton>
        <RunButton primary={false} onClick={() => input.current?.click()}>
          Open results (moefy run --json)…
        </RunButton>
        <input
          ref={input}
          type="file"
          accept=".json,application/json"
          hidden
          aria-label={`${name} results file`}
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = '';
            if (f) void read(f);
          }}
        />
        {stored && (
          <RunButton primary={false} onClick={() => void deleteStored(stored.key)}>
            Delete the stored run
          </RunButton>
        )}
      </div>
    </section>
  );
}
