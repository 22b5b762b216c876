// Checkpoints of a LaDiMo run (arXiv 2408.04278), so an interrupted run resumes where it stopped: the
// captured FFN pairs as they stream in, each layer's distillation mid-way and its finished block. They live
// in a folder of a HostIO: the CLI's spec checkpoint.dir, or browser storage (src/worker/storage.ts). The
// folder records the identity of its run, and a run with another identity refuses it rather than mixing
// results. A set of arrays is complete once its .json index exists: the index is written last.
//
//   spec.json                                  the run's identity (checkpointIdentity)
//   capture.cNNNN.json, .l<L>.x.f32, .l<L>.fx.f32   captured rows, chunk by chunk (capture-stage.ts)
//   capture.json                               the capture is complete
//   layer-<L>-<split>-<init>.json, .<weight>.f32    a distilled block (distill-stage.ts)
//   layer-<L>-<split>-<init>.partial.json      points at the newer of two slots -a / -b holding weights,
//                                              Adam moments, step and loss curve of a layer mid-way
// and, for methods that keep pieces (PieceMemo: DIVE, LLaMA-MoE v2),
//   <prefix><name>.json                        a finished piece
//   train-<prefix><name>/train-step-*          a training loop's snapshots within a piece under way
import type { Gpu } from '../../gpu/device.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { HostIO } from '../../cli/io.ts';
import { openCheckpoint } from '../../model/load.ts';
import { baseName, readText, type ByteSource } from '../../model/source.ts';
import type { Checkpoint } from '../../model/weights.ts';
import { FIELDS, type RunSpec, type SpecKey } from '../../state/spec.ts';
import { latestSnapshot, saveSnapshot } from '../../train/checkpoint.ts';
import type { TrainOptions, TrainSnapshot } from '../../train/trainer.ts';
import { textDataFromFiles, type TextData } from './data.ts';

export type StoredArray = Float32Array | Uint32Array;

interface ArraysIndex<M> {
  shapes: Record<string, number[]>;
  /** 'u32' arrays; the rest are f32 */
  u32?: string[];
  meta: M;
}

/**
 * Finished pieces of a run by name, as JSON (a DIVE affinity row, a construction's scores): what a method
 * keeps so that a stopped run resumes at the first piece it had not finished; and the training snapshots
 * of a piece under way, so that it resumes mid-piece too.
 */
export interface PieceMemo {
  get<T>(name: string): Promise<T | null>;
  put(name: string, value: unknown): Promise<void>;
  /** a training loop's snapshots (src/train/checkpoint.ts) by name, e.g. one per stage of a piece */
  snapshots(name: string): TrainSnapshots;
}

/** Where one training loop keeps its snapshots: the latest to resume from, a new one, and clearing them once its piece is kept. */
export interface TrainSnapshots {
  latest(): Promise<TrainSnapshot | null>;
  save(s: TrainSnapshot): Promise<void>;
  clear(): Promise<void>;
}

/** Where each training stage of a piece keeps its snapshots. */
export type StageSnapshots = (stage: 1 | 2) => TrainSnapshots;

/**
 * The piece `name`: read back from `memo` when kept, else made by `make` (given its stages' snapshots,
 * `<name>-stage<s>`, to resume from and save into) and kept, its snapshots then cleared.
 */
export async function keptPiece<T>(memo: PieceMemo | undefined, name: string, make: (snapshots?: StageSnapshots) => Promise<T>): Promise<T> {
  const kept = memo ? await memo.get<T>(name) : null;
  if (kept !== null) return kept;
  const snapshots = memo && ((stage: 1 | 2) => memo.snapshots(`${name}-stage${stage}`));
  const v = await make(snapshots);
  if (memo) {
    await memo.put(name, v);
    for (const stage of [1, 2] as const) await snapshots!(stage).clear();
  }
  return v;
}

/**
 * A training loop's resume and save options over `snaps` (none without them): it starts from the latest
 * snapshot, said through `log` as "<what>: resuming …", and saves its snapshots there.
 */
export async function snapshotOptions(snaps: TrainSnapshots | undefined, what: string, steps: number, log?: (m: string) => void): Promise<Pick<TrainOptions, 'resume' | 'onCheckpoint'>> {
  const resume = (await snaps?.latest()) ?? undefined;
  if (resume) log?.(`${what}: resuming from its snapshot at step ${resume.step} of ${steps}`);
  return { resume, onCheckpoint: snaps && ((s) => snaps.save(s)) };
}

/**
 * What `moefy run` opens for a method that keeps pieces (DIVE, LLaMA-MoE v2, Mixture-of-Depths): the spec's
 * checkpoint (and its files), its text, and the run's PieceMemo in checkpoint.dir when one is set.
 */
export async function openPiecesRun(io: HostIO, spec: RunSpec, identity: Record<string, unknown>, prefix: string): Promise<{
  ckpt: Checkpoint; modelFiles: ByteSource[]; data: TextData; memo?: PieceMemo;
}> {
  const modelFiles = await io.open(spec.tokenizer ? [spec.model, spec.tokenizer] : [spec.model]);
  const ckpt = await openCheckpoint(modelFiles);
  const data = await textDataFromFiles(await io.open([spec.data]), spec.data);
  const dir = spec['checkpoint.dir'];
  const memo = dir ? (await RunCheckpoint.open(io, dir, identity)).memo(prefix) : undefined;
  return { ckpt, modelFiles, data, memo };
}

export class RunCheckpoint {
  /** The folder's files as last listed; null after a write or refresh(), so the next read lists it again. */
  private files: ByteSource[] | null = null;

  private constructor(private readonly io: HostIO, readonly dir: string) {}

  /** Opens (or starts) the folder for a run of `identity`; throws naming the first field that differs from its own. */
  static async open(io: HostIO, dir: string, identity: Record<string, unknown>): Promise<RunCheckpoint> {
    const found = await RunCheckpoint.find(io, dir, identity);
    if (found) return found;
    const cp = new RunCheckpoint(io, dir);
    await cp.write('spec.json', new TextEncoder().encode(JSON.stringify(identity, null, 2)));
    return cp;
  }

  /** The folder of a run of `identity` if one was started there (open's check), else null; writes nothing. */
  static async find(io: HostIO, dir: string, identity: Record<string, unknown>): Promise<RunCheckpoint | null> {
    const cp = new RunCheckpoint(io, dir);
    const saved = await cp.file('spec.json');
    if (!saved) return null;
    const theirs = JSON.parse(await readText(saved)) as Record<string, unknown>;
    const differs = [...new Set([...Object.keys(identity), ...Object.keys(theirs)])].find((k) => JSON.stringify(identity[k]) !== JSON.stringify(theirs[k]));
    if (differs) throw new Error(`${dir}: holds checkpoints of another run (its ${differs} is ${JSON.stringify(theirs[differs])}, this spec's is ${JSON.stringify(identity[differs])}); use another checkpoint.dir`);
    return cp;
  }

  /** Forgets the listing, after the folder changed from outside (a file deleted through the storage panel). */
  refresh(): void {
    this.files = null;
  }

  private async file(name: string): Promise<ByteSource | undefined> {
    this.files ??= await this.io.open([this.dir]).catch(() => [] as ByteSource[]);
    return this.files.find((f) => baseName(f.name) === name);
  }

  private async write(name: string, bytes: Uint8Array): Promise<void> {
    this.files = null;
    await this.io.write(`${this.dir}/${name}`, bytes);
  }

  /** Whether `name`'s set is complete. */
  async has(name: string): Promise<boolean> {
    return (await this.file(`${name}.json`)) !== undefined;
  }

  /** Writes host arrays (f32 or u32) and `meta` under `name`, the index last. */
  async saveArrays(name: string, arrays: Record<string, { data: StoredArray; shape: readonly number[] }>, meta: unknown): Promise<void> {
    for (const [k, { data }] of Object.entries(arrays)) {
      await this.write(`${name}.${k}.${data instanceof Uint32Array ? 'u32' : 'f32'}`, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    const index: ArraysIndex<unknown> = {
      shapes: Object.fromEntries(Object.entries(arrays).map(([k, a]) => [k, [...a.shape]])),
      u32: Object.keys(arrays).filter((k) => arrays[k].data instanceof Uint32Array),
      meta,
    };
    await this.write(`${name}.json`, new TextEncoder().encode(JSON.stringify(index)));
  }

  /** The arrays and metadata saved under `name`, or null when that set was never completed. */
  async loadArrays<M>(name: string): Promise<{ arrays: Record<string, { data: StoredArray; shape: number[] }>; meta: M } | null> {
    const index = await this.file(`${name}.json`);
    if (!index) return null;
    const { shapes, u32 = [], meta } = JSON.parse(await readText(index)) as ArraysIndex<M>;
    const arrays: Record<string, { data: StoredArray; shape: number[] }> = {};
    for (const [k, shape] of Object.entries(shapes)) {
      const ext = u32.includes(k) ? 'u32' : 'f32';
      const f = await this.file(`${name}.${k}.${ext}`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (!f || f.size !== n * 4) throw new Error(`${this.dir}/${name}.${k}.${ext}: missing or not ${n} values; delete ${name}.json to recompute`);
      const bytes = (await f.read(0, f.size)).slice().buffer;
      arrays[k] = { data: ext === 'u32' ? new Uint32Array(bytes) : new Float32Array(bytes), shape };
    }
    return { arrays, meta };
  }

  /** Reads GPU tensors back and saves them as saveArrays does. */
  async saveTensors(name: string, tensors: Record<string, Tensor>, meta: unknown): Promise<void> {
    const arrays: Record<string, { data: StoredArray; shape: readonly number[] }> = {};
    for (const [k, t] of Object.entries(tensors)) arrays[k] = { data: (await t.read()) as StoredArray, shape: t.shape };
    await this.saveArrays(name, arrays, meta);
  }

  /** The saved arrays of `name` uploaded as tensors, and its metadata; null when that set was never completed. */
  async loadTensors<M>(gpu: Gpu, name: string): Promise<{ tensors: Record<string, Tensor>; meta: M } | null> {
    const saved = await this.loadArrays<M>(name);
    if (!saved) return null;
    const tensors = Object.fromEntries(Object.entries(saved.arrays).map(([k, a]) => [k, gpu.upload(a.data, a.shape, `${name}.${k}`)]));
    return { tensors, meta: saved.meta };
  }

  /**
   * Pieces kept as the metadata of array-less sets named `<prefix><name>` (files `<prefix><name>.json`); a
   * loop's snapshots in the subfolder `train-<prefix><name>` (the folder's identity already vouches for them).
   */
  memo(prefix: string): PieceMemo {
    return {
      get: async <T>(name: string) => (await this.loadArrays<T>(`${prefix}${name}`))?.meta ?? null,
      put: (name, value) => this.saveArrays(`${prefix}${name}`, {}, value),
      snapshots: (name) => {
        const dir = `${this.dir}/train-${prefix}${name}`;
        return {
          latest: () => latestSnapshot(this.io, dir, {}),
          save: (s) => saveSnapshot(this.io, dir, s, {}),
          clear: async () => {
            if (!this.io.remove) return;
            for (const f of await this.io.open([dir]).catch(() => [] as ByteSource[])) await this.io.remove(`${dir}/${baseName(f.name)}`);
          },
        };
      },
    };
  }

  /** Deletes every file of `name`'s set, where the storage can delete (elsewhere they stay, unused). */
  async remove(name: string): Promise<void> {
    if (!this.io.remove) return;
    const index = `${name}.json`;
    const own = (await this.io.open([this.dir]).catch(() => [] as ByteSource[])).map((f) => baseName(f.name)).filter((n) => n.startsWith(`${name}.`));
    // the index first: a set without its index is incomplete, so it is never read half-deleted
    for (const n of own.sort((a, b) => Number(b === index) - Number(a === index))) await this.io.remove(`${this.dir}/${n}`);
    this.files = null;
  }
}

/** LaDiMo's distillation fields (the other train.* fields belong to method 'train'). */
const DISTILL_FIELDS = new Set<SpecKey>(['train.steps', 'train.batchTokens', 'train.lr', 'train.alpha', 'train.topK', 'train.normTopK', 'train.heldOut']);

/**
 * The fields a checkpoint's contents (captured pairs, distilled blocks) depend on: the inputs, the seed, the
 * calibration and construction, the distillation, and eval.window, which cuts the calibration windows. An
 * allow-list, so that the router and evaluation settings applied after distillation, where outputs go, and
 * other methods' fields never make a checkpoint "another run's".
 */
function dependsOn(key: SpecKey): boolean {
  return ['method', 'model', 'tokenizer', 'data', 'seed', 'eval.window'].includes(key) || key.startsWith('calibration.') ||
    key.startsWith('construct.') || DISTILL_FIELDS.has(key);
}

/**
 * What a run's checkpoints depend on: the spec's result-determining fields ("train.steps": 4000, …). In the
 * browser, `sources` (the loaded model's and the data's identity) stand in for the spec's model, tokenizer
 * and data, which there only name what the Model and Data stages loaded.
 */
export function checkpointIdentity(spec: RunSpec, sources?: { model: unknown; data: unknown }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key } of FIELDS) if (dependsOn(key)) out[key] = spec[key];
  if (sources) {
    for (const k of ['model', 'tokenizer', 'data'] as const) delete out[k];
    Object.assign(out, sources);
  }
  return out;
}
