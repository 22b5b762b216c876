// Methods whose runs keep finished pieces (RunCheckpoint.memo) in the browser's store: DIVE (arXiv
// 2506.09351; an affinity row, a model's perplexities and retraining), LLaMA-MoE v2 (arXiv 2411.15708;
// a construction with its post-training and scores) and Mixture-of-Depths (arXiv 2410.13077; a tuned and
// scored variant). A run's folder is keyed by its identity with the
// loaded model and data (runs.ts), so Cancel or a reload resumes at the next piece and a finished run is
// read back without recomputing anything.
import { RunCheckpoint, type PieceMemo } from '../methods/ladimo/checkpoint.ts';
import type { TextData } from '../methods/ladimo/data.ts';
import { DIVE_PIECES, diveIdentity } from '../methods/dive/run.ts';
import { V2_PIECES, v2Identity } from '../methods/llama-moe-v2/run.ts';
import { MOD_PIECES, modIdentity } from '../methods/mod/run.ts';
import type { RunSpec } from '../state/spec.ts';
import type { LoadedSession } from './model.ts';
import type { PiecesResume } from './pipeline-types.ts';
import { loadedKey } from './runs.ts';
import type { BrowserStore } from './storage.ts';

/** The methods with pieces: their files' prefix and what their pieces depend on. */
const METHODS = {
  dive: { prefix: DIVE_PIECES, identity: diveIdentity },
  'llama-moe-v2': { prefix: V2_PIECES, identity: v2Identity },
  mod: { prefix: MOD_PIECES, identity: modIdentity },
} as const;
export type PieceMethod = keyof typeof METHODS;

function key(spec: RunSpec, loaded: LoadedSession, data: TextData, m: PieceMethod) {
  return loadedKey(METHODS[m].identity(spec), loaded.summary, data);
}

/** What is stored of `spec`'s run on the loaded model and data, or null. */
export async function storedPieces(store: BrowserStore, spec: RunSpec, loaded: LoadedSession, data: TextData, m: PieceMethod): Promise<PiecesResume | null> {
  const { dir } = await key(spec, loaded, data, m);
  const pieces = (await store.list()).filter((f) => f.path.startsWith(`${dir}/${METHODS[m].prefix}`)).length;
  return pieces ? { pieces, key: `${dir}/checkpoint` } : null;
}

/** The run's pieces in its folder of the store (started if new). */
export async function pieceMemo(store: BrowserStore, spec: RunSpec, loaded: LoadedSession, data: TextData, m: PieceMethod): Promise<PieceMemo> {
  const { identity, dir } = await key(spec, loaded, data, m);
  return (await RunCheckpoint.open(store, dir, identity)).memo(METHODS[m].prefix);
}
