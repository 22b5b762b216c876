// The pipeline's runs in browser storage (storage.ts): each run's checkpoints in a folder 'runs/<key>', the
// key a hash of the run's identity (the spec's result-determining fields, checkpoint.ts, with the loaded
// model's files and the data's domains in place of the spec's model and data), so a reload with the same
// spec, model and data finds them. The Storage panel sees a LaDiMo run as two items, its captured
// activations and its distilled layers, each deletable on its own; a training run (method 'train') as one,
// its snapshots; a DIVE run as one, its finished pieces.
import { checkpointIdentity } from '../methods/ladimo/checkpoint.ts';
import type { TextData } from '../methods/ladimo/data.ts';
import { baseName, readText } from '../model/source.ts';
import type { RunSpec } from '../state/spec.ts';
import { trainIdentity } from '../train/task.ts';
import type { ModelSummary } from './model.ts';
import type { StoredItem } from './pipeline-types.ts';
import type { BrowserStore } from './storage.ts';

const RUNS = 'runs';

type RunKey = { identity: Record<string, unknown>; dir: string };

/** What stands in for the spec's model, tokenizer and data in the browser: the loaded files and the data's domains. */
function sources(model: ModelSummary, data: TextData): { model: unknown; data: unknown } {
  return {
    model: { name: model.name, files: model.files.map((f) => ({ name: baseName(f.name), size: f.size })) },
    data: { label: data.label, domains: data.domains.map(({ name, trainBytes, validBytes }) => ({ name, trainBytes, validBytes })) },
  };
}

async function keyOf(identity: Record<string, unknown>): Promise<RunKey> {
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(JSON.stringify(identity))));
  return { identity, dir: `${RUNS}/${[...hash.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('')}` };
}

/** A LaDiMo run's identity and its folder. */
export function runKey(spec: RunSpec, model: ModelSummary, data: TextData): Promise<RunKey> {
  return keyOf(checkpointIdentity(spec, sources(model, data)));
}

/** `identity` with the loaded sources in place of the spec's paths, and its folder. */
export function loadedKey(identity: Record<string, unknown>, model: ModelSummary, data: TextData): Promise<RunKey> {
  for (const k of ['model', 'tokenizer', 'data']) delete identity[k];
  return keyOf({ ...identity, ...sources(model, data) });
}

/** A training run's identity (src/train/task.ts trainIdentity, with the loaded sources) and its folder. */
export function trainRunKey(spec: RunSpec, model: ModelSummary, data: TextData): Promise<RunKey> {
  return loadedKey(trainIdentity(spec), model, data);
}


const SNAPSHOT = /^train-step-(\d+)\.json$/;

/** Steps of the complete training snapshots in `dir` (src/train/checkpoint.ts: a snapshot is complete once its .json exists), ascending. */
export async function snapshotSteps(store: BrowserStore, dir: string): Promise<number[]> {
  const steps = (await store.list()).map((f) => (f.path.startsWith(`${dir}/`) ? SNAPSHOT.exec(f.path.slice(dir.length + 1)) : null));
  return steps.filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
}

/**
 * Deletes the snapshots in `dir` older than step `keep`: in the browser only the latest is resumed, and
 * each holds the trainable weights three times over (values and both AdamW moments).
 */
export async function dropOlderSnapshots(store: BrowserStore, dir: string, keep: number): Promise<void> {
  for (const step of await snapshotSteps(store, dir)) {
    if (step >= keep) continue;
    const stem = `${dir}/train-step-${String(step).padStart(8, '0')}`;
    // the .json first: without it the snapshot is incomplete, so nothing reads it half-deleted
    await store.remove(`${stem}.json`);
    await store.remove(`${stem}.safetensors`);
  }
}

type Part = 'capture' | 'checkpoint';

/** A method's finished pieces (RunCheckpoint.memo): DIVE's `dive-<piece>.json`, LLaMA-MoE v2's `v2-<piece>.json`, MoD's `mod-<piece>.json`. */
const PIECE = /^(dive|v2|mod)-.*\.json$/;

/** Which item a run's file belongs to: capture.* to the capture, the rest (spec.json included) to the checkpoint. */
const partOf = (file: string): Part => (file.startsWith('capture.') ? 'capture' : 'checkpoint');

/** The stored runs as Storage panel items: `runs/<key>/capture` and `runs/<key>/checkpoint`. */
export async function runItems(store: BrowserStore): Promise<StoredItem[]> {
  const parts = new Map<string, { dir: string; part: Part; bytes: number; files: string[] }>();
  for (const { path, size } of await store.list()) {
    const m = new RegExp(`^(${RUNS}/[^/]+)/([^/]+)$`).exec(path);
    if (!m) continue;
    const key = `${m[1]}/${partOf(m[2])}`;
    const item = parts.get(key) ?? { dir: m[1], part: partOf(m[2]), bytes: 0, files: [] };
    item.bytes += size;
    item.files.push(m[2]);
    parts.set(key, item);
  }
  // a run's spec.json alone is no item of its own when the run has a capture
  for (const [key, item] of parts) {
    const capture = parts.get(`${item.dir}/capture`);
    if (item.part === 'checkpoint' && item.files.length === 1 && capture) {
      capture.bytes += item.bytes;
      parts.delete(key);
    }
  }
  const items: StoredItem[] = [];
  for (const [key, { dir, part, bytes, files }] of parts) {
    const run = await runLabel(store, dir);
    if (part === 'capture') {
      items.push({ key, kind: 'capture', label: `${run}: captured activations${files.includes('capture.json') ? '' : ' (incomplete)'}`, bytes });
      continue;
    }
    const numbered = (re: RegExp) => files.map((f) => Number(re.exec(f)?.[1] ?? NaN)).filter((l) => !Number.isNaN(l)).sort((a, b) => a - b);
    const done = numbered(/^layer-(\d+)-[^.]+\.json$/);
    const partial = numbered(/^layer-(\d+)-[^.]+\.partial\.json$/);
    const snapshots = numbered(SNAPSHOT);
    const pieces = files.filter((f) => PIECE.test(f)).length;
    const what = [
      done.length && `distilled layers ${done.join(', ')}`,
      partial.length && `layer ${partial.join(', ')} part-way`,
      snapshots.length && `training snapshot${snapshots.length > 1 ? 's' : ''} at step ${snapshots.join(', ')}`,
      pieces && `${pieces} finished piece${pieces > 1 ? 's' : ''} of the run`,
    ].filter(Boolean).join(', ');
    items.push({ key, kind: 'checkpoint', label: `${run}: ${what || 'run spec'}`, bytes });
  }
  return items.sort((a, b) => (a.key < b.key ? -1 : 1));
}

/** Deletes a `runs/<key>/capture` or `runs/<key>/checkpoint` item; the run's folder goes with its last item. */
export async function deleteRunItem(store: BrowserStore, key: string): Promise<{ dir: string; part: Part }> {
  const m = new RegExp(`^(${RUNS}/[^/]+)/(capture|checkpoint)$`).exec(key);
  if (!m) throw new Error(`${key}: not a stored item (expected runs/<run>/capture, runs/<run>/checkpoint or model:<file>)`);
  const [, dir, part] = m as unknown as [string, string, Part];
  const files = (await store.list()).map((f) => f.path).filter((p) => p.startsWith(`${dir}/`));
  if (!files.length) throw new Error(`${key}: nothing stored under it`);
  const name = (p: string) => p.slice(dir.length + 1);
  const mine = files.filter((p) => partOf(name(p)) === part && name(p) !== 'spec.json');
  // indexes first: a set without its index is incomplete, so nothing reads it half-deleted
  for (const p of mine.sort((a, b) => Number(b.endsWith('.json')) - Number(a.endsWith('.json')))) await store.remove(p);
  if (files.length - mine.length <= 1) for (const p of files.filter((p) => name(p) === 'spec.json')) await store.remove(p);
  return { dir, part };
}

/** "stories260K.bin · last:2 · 4 experts · 60 steps · seed 0" (a LaDiMo run) from the run's spec.json. */
async function runLabel(store: BrowserStore, dir: string): Promise<string> {
  const [spec] = await store.open([`${dir}/spec.json`]).catch(() => []);
  if (!spec) return dir;
  const id = JSON.parse(await readText(spec)) as Record<string, unknown> & { model?: { name?: string } };
  const model = id.model?.name ?? 'model';
  if (id.method === 'dive') return [model, 'DIVE', `${id['dive.experts']} experts`, `k ${id['dive.topK']}`, `seed ${id.seed}`].join(' · ');
  if (id.method === 'llama-moe-v2') return [model, 'LLaMA-MoE v2', `${id['v2.mlp']} ${id['v2.experts']} experts`, `${id['v2.stage1Steps']} + ${id['v2.stage2Steps']} steps`, `seed ${id.seed}`].join(' · ');
  if (id.method === 'mod') return [model, 'Mixture-of-Depths', `k ${id['mod.k']}`, String(id['mod.variants']), `${id['train.steps']} steps`, `seed ${id.seed}`].join(' · ');
  if (id.method === 'train') return [model, 'training', `${id['train.steps']} steps of ${id['train.batchTokens']} tokens`, `seed ${id.seed}`].join(' · ');
  return [model, `layers ${id['construct.layers']}`, `${id['construct.experts']} experts`, `${id['train.steps']} steps`, `seed ${id.seed}`].join(' · ');
}
