// AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101, Algorithm 2: decoupled weight decay) over the trainable
// parameters, after global gradient-norm clipping on the GPU (clip.ts), with the learning rate of a cosine
// schedule after a linear warm-up (SGDR, Loshchilov & Hutter 2017, arXiv:1608.03983, eq. 5, one cycle).
// Weight decay skips tensors of rank 1 by default (norm weights and biases), as nanoGPT and HF do.
// Buffers (gradients, moments, clip partials) are allocated once; a step records dispatches only.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { adamStep } from '../ops/optim.ts';
import { scale } from '../ops/elementwise.ts';
import { GradClip } from './clip.ts';
import type { Param } from './tape.ts';

export type ScheduleKind = 'cosine' | 'constant';

export interface Schedule {
  kind: ScheduleKind;
  /** peak learning rate, reached after warm-up */
  lr: number;
  /** steps of linear warm-up from 0 */
  warmup: number;
  /** total steps: the cosine reaches minLrRatio·lr there */
  steps: number;
  /** the cosine's floor as a share of lr */
  minLrRatio: number;
}

/** The learning rate of update `step` (1-based): lr·step/warmup during warm-up, then constant or cosine. */
export function learningRate(s: Schedule, step: number): number {
  if (step <= s.warmup) return (s.lr * step) / s.warmup;
  if (s.kind === 'constant') return s.lr;
  const progress = Math.min(1, (step - s.warmup) / Math.max(1, s.steps - s.warmup));
  return s.lr * (s.minLrRatio + (1 - s.minLrRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** max global gradient norm; 0: no clipping (the norm is still measured) */
  clip: number;
  /** which parameters weight decay applies to (default: rank ≥ 2, not norms or biases) */
  decays?: (p: Param) => boolean;
}

/** Adam's first and second moments of one parameter. */
export interface Moments {
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  /** updates taken (Adam's t); the next is t = step + 1 */
  step = 0;
  readonly moments = new Map<Param, Moments>();
  private readonly clipper: GradClip;

  /** Allocates each parameter's gradient (if not yet) and zero moments. */
  constructor(gpu: Gpu, readonly params: readonly Param[], readonly opts: AdamWOptions) {
    const zeros = (p: Param, what: string) => gpu.upload(new Float32Array(p.value.size), p.value.shape, `${p.name}.${what}`);
    for (const p of params) {
      if (!p.trainable) throw new Error(`AdamW: ${p.name} is frozen`);
      p.grad ??= zeros(p, 'grad');
      this.moments.set(p, { m: zeros(p, 'exp_avg'), v: zeros(p, 'exp_avg_sq') });
    }
    this.clipper = new GradClip(gpu, params.map((p) => p.grad!));
  }

  /** [2]: the global gradient norm of the last update (before clipping) and the clip coefficient. */
  get gradStats(): Tensor {
    return this.clipper.stats;
  }

  /** Marks every gradient stale: the next backward overwrites it (micro-batches then add up). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** Records one update with learning rate `lr`: clip, then AdamW on every parameter. */
  update(lr: number): void {
    const { beta1, beta2, eps, weightDecay, clip, decays = (p: Param) => p.value.shape.length >= 2 } = this.opts;
    // a parameter no op reached this step has a zero gradient, not the last step's
    for (const p of this.params) if (p.fresh) scale(p.grad!, 0, 'inplace');
    this.clipper.record(clip);
    const t = ++this.step;
    for (const p of this.params) {
      const { m, v } = this.moments.get(p)!;
      adamStep(p.value, p.grad!, m, v, t, { lr, beta1, beta2, eps, weightDecay: decays(p) ? weightDecay : 0 });
    }
  }

  release(): void {
    for (const { m, v } of this.moments.values()) {
      m.release();
      v.release();
    }
    this.clipper.release();
  }
}
