// Method 'dive' in the engine worker: DIVE (arXiv 2506.09351) end to end, `moefy run`'s diveRun
// (src/methods/dive/run.ts) on the checkpoint the Model stage loaded and the Data stage's text. Each
// finished piece (a row of the affinity matrix, a model's perplexities and retraining) is kept in a
// checkpoint folder in the browser's store under the run's key (runs.ts), so Cancel or a reload resumes at
// the next piece, and a finished run is read back without recomputing anything.
import { RunCheckpoint } from '../methods/ladimo/checkpoint.ts';
import type { TextData } from '../methods/ladimo/data.ts';
import type { TaskControl } from '../methods/ladimo/progress.ts';
import { checkpointMemo, diveRun, type DiveMetrics } from '../methods/dive/run.ts';
import type { RunSpec } from '../state/spec.ts';
import type { LoadedSession } from './model.ts';
import type { DiveResume } from './pipeline-types.ts';
import { DIVE_PIECE, diveRunKey } from './runs.ts';
import type { BrowserStore } from './storage.ts';

/** What is stored of `spec`'s run on the loaded model and data. */
export async function storedDive(store: BrowserStore, spec: RunSpec, loaded: LoadedSession, data: TextData): Promise<DiveResume | null> {
  const { dir } = await diveRunKey(spec, loaded.summary, data);
  const pieces = (await store.list()).filter((f) => f.path.startsWith(`${dir}/${DIVE_PIECE}`)).length;
  return pieces ? { pieces, key: `${dir}/checkpoint` } : null;
}

export async function diveLoaded(loaded: LoadedSession, data: TextData, spec: RunSpec, store: BrowserStore, control: TaskControl): Promise<DiveMetrics> {
  const { identity, dir } = await diveRunKey(spec, loaded.summary, data);
  const memo = checkpointMemo(await RunCheckpoint.open(store, dir, identity));
  return diveRun(loaded.model.gpu, loaded.ckpt, data, spec, control, memo);
}
