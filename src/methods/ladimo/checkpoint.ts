// Checkpoints of a LaDiMo run, so an interrupted run resumes: the captured FFN pairs of each layer and
// every finished layer's distilled block (weights and results) are saved in a folder as they complete;
// a run with the same spec loads them instead of recomputing. The folder records the spec it belongs to,
// and a run with a different spec refuses it rather than mixing results.
import type { Gpu } from '../../gpu/device.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { HostIO } from '../../cli/io.ts';
import { baseName, readText, type ByteSource } from '../../model/source.ts';
import type { RunSpec } from '../../state/spec.ts';

/** Fields that change no result: where outputs and checkpoints go. */
const NEUTRAL = ['export.dir', 'checkpoint.dir'] as const;

export class RunCheckpoint {
  private constructor(private readonly io: HostIO, readonly dir: string, private files: ByteSource[]) {}

  /** Opens (or starts) the folder for `spec`; throws naming the first field that differs from its spec. */
  static async open(io: HostIO, spec: RunSpec): Promise<RunCheckpoint> {
    const dir = spec['checkpoint.dir'];
    const files = await io.open([dir]).catch(() => [] as ByteSource[]);
    const cp = new RunCheckpoint(io, dir, files);
    const mine = neutral(spec);
    const saved = cp.file('spec.json');
    if (saved) {
      const theirs = JSON.parse(await readText(saved)) as Record<string, unknown>;
      const differs = Object.keys(mine).find((k) => JSON.stringify(mine[k]) !== JSON.stringify(theirs[k]));
      if (differs) throw new Error(`${dir}: holds checkpoints of another run (its ${differs} is ${JSON.stringify(theirs[differs])}, this spec's is ${JSON.stringify(mine[differs])}); use another checkpoint.dir`);
    } else {
      await io.write(`${dir}/spec.json`, new TextEncoder().encode(JSON.stringify(mine, null, 2)));
    }
    return cp;
  }

  private file(name: string): ByteSource | undefined {
    return this.files.find((f) => baseName(f.name) === name);
  }

  async saveTensors(name: string, tensors: Record<string, Tensor>, meta: unknown): Promise<void> {
    for (const [k, t] of Object.entries(tensors)) {
      const a = (await t.read()) as Float32Array;
      await this.io.write(`${this.dir}/${name}.${k}.f32`, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    }
    // the .json goes last: its presence means the set is complete
    await this.io.write(`${this.dir}/${name}.json`, new TextEncoder().encode(JSON.stringify({ shapes: Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.shape])), meta })));
  }

  /** The saved tensors (uploaded) and metadata of `name`, or null when that stage never completed. */
  async loadTensors<M>(gpu: Gpu, name: string): Promise<{ tensors: Record<string, Tensor>; meta: M } | null> {
    this.files = await this.io.open([this.dir]).catch(() => this.files);
    const index = this.file(`${name}.json`);
    if (!index) return null;
    const { shapes, meta } = JSON.parse(await readText(index)) as { shapes: Record<string, number[]>; meta: M };
    const tensors: Record<string, Tensor> = {};
    for (const [k, shape] of Object.entries(shapes)) {
      const f = this.file(`${name}.${k}.f32`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (!f || f.size !== n * 4) throw new Error(`${this.dir}/${name}.${k}.f32: missing or not ${n} float32 values; delete ${name}.json to recompute`);
      const bytes = await f.read(0, f.size);
      tensors[k] = gpu.upload(new Float32Array(bytes.slice().buffer), shape, `${name}.${k}`);
    }
    return { tensors, meta };
  }
}

/** The spec's fields that determine results, flat ("train.steps": 4000, …). */
function neutral(spec: RunSpec): Record<string, unknown> {
  const flat: Record<string, unknown> = { ...spec };
  for (const k of NEUTRAL) delete flat[k];
  return flat;
}
