// Method 'dive' in the engine worker: DIVE (arXiv 2506.09351) end to end, `moefy run`'s diveRun
// (src/methods/dive/run.ts) on the checkpoint the Model stage loaded and the Data stage's text. Each
// finished piece (a row of the affinity matrix, a model's perplexities and retraining) is kept in the
// browser's store under the run's key (runs.ts), so Cancel or a reload resumes at the next piece, and a
// finished run is read back without recomputing anything.
import { readText } from '../model/source.ts';
import type { TextData } from '../methods/ladimo/data.ts';
import type { TaskControl } from '../methods/ladimo/progress.ts';
import { diveRun, type DiveMemo, type DiveMetrics } from '../methods/dive/run.ts';
import type { RunSpec } from '../state/spec.ts';
import type { LoadedSession } from './model.ts';
import type { DiveResume } from './pipeline-types.ts';
import { DIVE_PIECE, diveRunKey } from './runs.ts';
import type { BrowserStore } from './storage.ts';

/** The store as a DiveMemo of the run in `dir`: piece `name` is the file `<dir>/dive-<name>.json`. */
function storeMemo(store: BrowserStore, dir: string): DiveMemo {
  const path = (name: string) => `${dir}/${DIVE_PIECE}${name}.json`;
  return {
    async get<T>(name: string) {
      const [f] = await store.open([path(name)]).catch(() => []);
      return f ? (JSON.parse(await readText(f)) as T) : null;
    },
    put: (name, value) => store.write(path(name), new TextEncoder().encode(JSON.stringify(value))),
  };
}

async function pieces(store: BrowserStore, dir: string): Promise<number> {
  return (await store.list()).filter((f) => f.path.startsWith(`${dir}/${DIVE_PIECE}`)).length;
}

/** What is stored of `spec`'s run on the loaded model and data. */
export async function storedDive(store: BrowserStore, spec: RunSpec, loaded: LoadedSession, data: TextData): Promise<DiveResume | null> {
  const { dir } = await diveRunKey(spec, loaded.summary, data);
  const n = await pieces(store, dir);
  return n ? { pieces: n, key: `${dir}/checkpoint` } : null;
}

export async function diveLoaded(loaded: LoadedSession, data: TextData, spec: RunSpec, store: BrowserStore, control: TaskControl): Promise<DiveMetrics> {
  const { identity, dir } = await diveRunKey(spec, loaded.summary, data);
  // what the Storage panel labels the run by
  if (!(await pieces(store, dir))) await store.write(`${dir}/spec.json`, new TextEncoder().encode(JSON.stringify(identity)));
  return diveRun(loaded.model.gpu, loaded.ckpt, data, spec, control, storeMemo(store, dir));
}
