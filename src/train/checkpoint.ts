// Training snapshots in a folder of a HostIO (the CLI's checkpoint.dir): one pair of files per snapshot,
//   train-step-<step>.safetensors   each trainable parameter under its name, and its AdamW moments as
//                                   <name>.exp_avg and <name>.exp_avg_sq (torch.optim.AdamW's state names)
//   train-step-<step>.json          the loop's state (step, sampler, curves) and the run's identity,
//                                   written last: a snapshot is complete once its .json exists
// A run resumes from the latest complete snapshot, after checking that it belongs to a run of the same
// identity (the spec fields the results depend on); older snapshots stay, so any of them can be resumed.
import type { HostIO } from '../cli/io.ts';
import { parseSafetensors } from '../model/safetensors.ts';
import { writeSafetensors, type SafetensorsTensor } from '../model/safetensors-write.ts';
import { baseName, readText, type ByteSource } from '../model/source.ts';
import { byteLength, decode, numel } from '../model/weights.ts';
import type { TrainSnapshot, TrainState } from './trainer.ts';

const NAME = /^train-step-(\d+)\.json$/;

function stem(step: number): string {
  return `train-step-${String(step).padStart(8, '0')}`;
}

interface StateFile {
  identity: Record<string, unknown>;
  state: TrainState;
}

/** Writes a snapshot into `dir`, the .json last. */
export async function saveSnapshot(io: HostIO, dir: string, s: TrainSnapshot, identity: Record<string, unknown>): Promise<void> {
  const tensors: SafetensorsTensor[] = Object.entries(s.tensors).flatMap(([name, t]) => [
    [name, t.shape, t.value],
    [`${name}.exp_avg`, t.shape, t.m],
    [`${name}.exp_avg_sq`, t.shape, t.v],
  ] as SafetensorsTensor[]);
  const state: TrainState = { step: s.step, windowsDrawn: s.windowsDrawn, curve: s.curve, evals: s.evals, seconds: s.seconds };
  await io.write(`${dir}/${stem(s.step)}.safetensors`, writeSafetensors(tensors, { format: 'pt' }));
  const file: StateFile = { identity, state };
  await io.write(`${dir}/${stem(s.step)}.json`, new TextEncoder().encode(JSON.stringify(file)));
}

/**
 * The latest complete snapshot in `dir`, or null when there is none (or no folder). Throws, naming the
 * first field that differs, when it belongs to a run of another identity.
 */
export async function latestSnapshot(io: HostIO, dir: string, identity: Record<string, unknown>): Promise<TrainSnapshot | null> {
  const files = await io.open([dir]).catch(() => [] as ByteSource[]);
  const byName = new Map(files.map((f) => [baseName(f.name), f]));
  const steps = [...byName.keys()].map((n) => NAME.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (!steps.length) return null;
  const step = Math.max(...steps);
  const json = byName.get(`${stem(step)}.json`)!;
  const { identity: theirs, state } = JSON.parse(await readText(json)) as StateFile;
  const differs = [...new Set([...Object.keys(identity), ...Object.keys(theirs)])].find((k) => JSON.stringify(identity[k]) !== JSON.stringify(theirs[k]));
  if (differs) {
    throw new Error(`${dir}: holds snapshots of another run (its ${differs} is ${JSON.stringify(theirs[differs])}, this spec's is ${JSON.stringify(identity[differs])}); use another checkpoint.dir`);
  }
  const st = byName.get(`${stem(step)}.safetensors`);
  if (!st) throw new Error(`${json.name}: its ${stem(step)}.safetensors is missing; delete the .json to resume from an earlier snapshot`);
  const entries = await parseSafetensors(st);
  const read = async (name: string): Promise<Float32Array> => {
    const e = entries.get(name);
    if (!e) throw new Error(`${st.name}: no tensor ${name}`);
    const n = numel(e.shape);
    return decode(e.dtype, await st.read(e.offset, byteLength(e.dtype, n)), n);
  };
  const tensors: TrainSnapshot['tensors'] = {};
  for (const [name, e] of entries) {
    if (name.endsWith('.exp_avg') || name.endsWith('.exp_avg_sq')) continue;
    tensors[name] = { shape: [...e.shape], value: await read(name), m: await read(`${name}.exp_avg`), v: await read(`${name}.exp_avg_sq`) };
  }
  return { ...state, tensors };
}
