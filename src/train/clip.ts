// Global gradient-norm clipping over all trainable parameters, on the GPU (shaders/clip.wgsl): the norm is a
// training metric and the clip coefficient is applied without a readback. Buffers are allocated once.
import shader from '../../shaders/clip.wgsl';
import type { Gpu } from '../gpu/device.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from '../ops/validate.ts';

const Params = paramStruct([['len', 'u32'], ['offset', 'u32'], ['count', 'u32'], ['maxNorm', 'f32']] as const);
const WG = 256;
/** Elements per partial sum of squares, and sumsq invocations per workgroup (CHUNK, SUMSQ_WG in clip.wgsl). */
const CHUNK = 2048;
const SUMSQ_WG = 64;

export class GradClip {
  /** [2]: the gradients' global L2 norm before clipping, and the coefficient applied */
  readonly stats: Tensor;
  private readonly partials: Tensor;
  private readonly offsets: number[];

  /** For these gradient tensors (fixed: the partials are laid out for them). */
  constructor(private readonly gpu: Gpu, private readonly grads: readonly Tensor[]) {
    if (!grads.length) throw new Error('GradClip: no gradients to clip');
    let n = 0;
    this.offsets = grads.map((g) => {
      const at = n;
      n += Math.ceil(g.size / CHUNK);
      return at;
    });
    this.partials = gpu.tensor([n], 'f32', 'clip.partials');
    this.stats = gpu.tensor([2], 'f32', 'clip.stats');
  }

  /** Records: norm = ‖all gradients‖₂ into stats[0]; when maxNorm > 0, g ← min(1, maxNorm/(norm + 1e-6))·g. */
  record(maxNorm: number): void {
    if (!(maxNorm >= 0) || !Number.isFinite(maxNorm)) throw new Error(`GradClip: maxNorm must be finite and ≥ 0 (0: no clipping), got ${maxNorm}`);
    const count = this.partials.size;
    this.grads.forEach((g, i) => this.gpu.dispatch({
      op: 'gradNorm sumsq',
      shapes: { grad: g.shape },
      shader,
      entry: 'sumsq',
      params: Params.pack({ len: g.size, offset: this.offsets[i], count, maxNorm }),
      bindings: [g, this.partials],
      workgroups: grid(Math.ceil(Math.ceil(g.size / CHUNK) / SUMSQ_WG)),
    }));
    this.gpu.dispatch({
      op: 'gradNorm',
      shader,
      entry: 'norm',
      constants: { WG },
      params: Params.pack({ len: 0, offset: 0, count, maxNorm }),
      bindings: [this.partials, this.stats],
      workgroups: [1],
    });
    if (maxNorm === 0) return;
    for (const g of this.grads) {
      this.gpu.dispatch({
        op: 'gradClip scale',
        shapes: { grad: g.shape },
        shader,
        entry: 'scale',
        constants: { WG },
        params: Params.pack({ len: g.size, offset: 0, count, maxNorm }),
        bindings: [g, this.stats],
        workgroups: grid(Math.ceil(g.size / WG)),
      });
    }
  }

  release(): void {
    this.partials.release();
    this.stats.release();
  }
}
