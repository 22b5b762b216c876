// Random MoE blocks for the MoE checks (moe.check.ts, moe-train.check.ts): tokens and weights drawn so
// that every routing decision is MARGIN away from a tie, so f32 and float64 route identically.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { Rng } from '../data/rng.ts';
import type { MoeWeights, RoutingOptions } from './moe.ts';
import { routerLogitsRef, routingMarginRef, softmaxRef, type MoeDims } from './moe.ref.ts';

/** Smallest distance (in probability) from any routing decision; f32 routing error is ~1e-7. */
export const MARGIN = 1e-4;

export interface BlockShape extends MoeDims {
  topK?: number;
  /** LaDiMo dynamic k, with thresholds at the terciles of the tokens' largest routing weight. */
  dynamic?: boolean;
  normTopK?: boolean;
  /** How many experts the router never picks (their router rows push them far down). */
  unrouted?: number;
  smoke?: boolean;
}

export interface Block {
  d: MoeDims;
  opts: RoutingOptions;
  x: Float32Array;    // [T, H]
  Wr: Float32Array;   // [E, H]
  Wg: Float32Array;   // [E, I, H]
  Wu: Float32Array;   // [E, I, H]
  Wd: Float32Array;   // [E, H, I]
}

export function blockLabel(s: BlockShape): string {
  const k = s.dynamic ? 'dynamic k' : `top-${s.topK}`;
  const unrouted = s.unrouted ? `, ${s.unrouted} expert${s.unrouted > 1 ? 's' : ''} never routed` : '';
  return `T${s.T} E${s.E} H${s.H} I${s.I} ${k}${s.normTopK ? ' renorm' : ''}${unrouted}`;
}

export function sortedMaxWeights(probs: Float64Array, T: number, E: number): number[] {
  const w = Array.from({ length: T }, (_, t) => Math.max(...probs.subarray(t * E, (t + 1) * E)));
  return w.sort((a, b) => a - b);
}

/**
 * Random block weights (or the given experts) and tokens, redrawn per token until routing is MARGIN
 * away from every tie.
 */
export function makeBlock(rng: Rng, s: BlockShape, experts?: { Wg: Float32Array; Wu: Float32Array; Wd: Float32Array }): Block {
  const { T, H, I, E } = s;
  const d = { T, H, I, E };
  const unrouted = s.unrouted ?? 0;
  // Feature 0 is a constant 3 when some experts are unrouted: their router rows weigh it by −12.
  const token = () => {
    const v = rng.normals(H);
    if (unrouted) v[0] = 3;
    return v;
  };
  const x = new Float32Array(T * H);
  for (let t = 0; t < T; t++) x.set(token(), t * H);
  const Wr = rng.normals(E * H, 2 / Math.sqrt(H));
  for (let e = E - unrouted; e < E; e++) Wr[e * H] = -12;
  const Wg = experts?.Wg ?? rng.normals(E * I * H, 1 / Math.sqrt(H));
  const Wu = experts?.Wu ?? rng.normals(E * I * H, 1 / Math.sqrt(H));
  const Wd = experts?.Wd ?? rng.normals(E * H * I, 1 / Math.sqrt(I));
  const opts: RoutingOptions = { normTopK: s.normTopK };
  if (s.dynamic) {
    const w = sortedMaxWeights(softmaxRef(routerLogitsRef(x, Wr, d), T, E), T, E);
    const between = (q: number) => {
      const i = Math.min(T - 1, Math.max(1, Math.round(q * T)));
      return (w[i - 1] + w[i]) / 2;
    };
    opts.dynamic = T > 2 ? { alpha: between(2 / 3), beta: between(1 / 3) } : { alpha: 0.6, beta: 0.3 };
  } else {
    opts.topK = s.topK;
  }
  for (let tries = 0; ; tries++) {
    const margin = routingMarginRef(softmaxRef(routerLogitsRef(x, Wr, d), T, E), T, E, opts);
    const near = [...margin.keys()].filter((t) => margin[t] < MARGIN);
    if (!near.length) break;
    if (tries === 100) throw new Error('could not draw tokens away from routing ties');
    for (const t of near) x.set(token(), t * H);
  }
  return { d, opts, x, Wr, Wg, Wu, Wd };
}

export function uploadBlock(gpu: Gpu, b: Block): MoeWeights {
  const { H, I, E } = b.d;
  return {
    router: gpu.upload(b.Wr, [E, H], 'router'),
    gate_proj: gpu.upload(b.Wg, [E, I, H], 'gate_proj'),
    up_proj: gpu.upload(b.Wu, [E, I, H], 'up_proj'),
    down_proj: gpu.upload(b.Wd, [E, H, I], 'down_proj'),
  };
}

/** 0 when the first n elements of two tensors hold the same bits, else Infinity. */
export async function sameBits(a: Tensor, b: Tensor, n = a.size): Promise<number> {
  const [x, y] = [await a.read(), await b.read()];
  const [u, v] = [new Uint32Array(x.buffer, x.byteOffset, x.length), new Uint32Array(y.buffer, y.byteOffset, y.length)];
  if (u.length < n || v.length < n) return Infinity;
  for (let i = 0; i < n; i++) if (u[i] !== v[i]) return Infinity;
  return 0;
}
