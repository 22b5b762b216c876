// Reduction wrappers over shaders/reduce.wgsl: per-row and whole-tensor sum/max/mean, MSE and its
// gradient, a histogram (routing-weight profiling), a bincount (expert loads) and non-finite counting.
import shader from '../../shaders/reduce.wgsl';
import { fmtShape } from '../gpu/errors.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { expectFinite, expectInt, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([
  ['len', 'u32'], ['seg', 'u32'], ['groups', 'u32'], ['scale', 'f32'],
  ['bins', 'u32'], ['lo', 'f32'], ['hi', 'f32'], ['invWidth', 'f32'],
] as const);

type ParamValues = Parameters<typeof Params.pack>[0];

/** Each entry reads only some fields; the rest are packed as zero. */
function params(v: Partial<ParamValues>): Uint8Array {
  return Params.pack({ len: 0, seg: 0, groups: 0, scale: 1, bins: 0, lo: 0, hi: 0, invWidth: 0, ...v });
}

export type ReduceOp = 'sum' | 'max' | 'mean';

/** Threads per row-reducing workgroup: the smallest power of two covering n, between 32 and 256. */
export function rowThreads(n: number): number {
  return Math.min(256, Math.max(32, 2 ** Math.ceil(Math.log2(n))));
}

const WG = 256;
/** Elements one workgroup folds per whole-tensor pass: 8 per thread, so 300k values take two passes. */
const CHUNK = WG * 8;

interface SegmentPass {
  op: string;
  entry: 'main' | 'sqdiff';
  /** main: [X, Y]; sqdiff: [A, B, Out]. */
  bindings: Tensor[];
  len: number;
  seg: number;
  max: boolean;
  scale: number;
  threads?: number;
}

/** One dispatch: workgroup g reduces elements [g·seg, (g+1)·seg) of len into output g. */
function segments(s: SegmentPass): void {
  const groups = Math.ceil(s.len / s.seg);
  const x = s.bindings[0];
  x.gpu.dispatch({
    op: s.op,
    shapes: { x: x.shape },
    shader,
    entry: s.entry,
    constants: { WG: s.threads ?? WG, MAX: s.max },
    params: params({ len: s.len, seg: s.seg, groups, scale: s.scale }),
    bindings: s.bindings,
    workgroups: grid(groups),
  });
}

/**
 * Reduces `len` values into out [1]: `first` records the pass over the inputs (CHUNK per workgroup, into
 * the tensor and with the scale it is given), then `main` folds the partials until one value is left.
 * finalScale applies once, in the last pass.
 */
function wholeTensor(
  op: string, gpu: Gpu, len: number, max: boolean, finalScale: number, out: Tensor,
  first: (y: Tensor, scale: number) => void,
): void {
  let n = Math.ceil(len / CHUNK);
  let y = n === 1 ? out : gpu.tensor([n], 'f32', `${op}.partials`);
  first(y, n === 1 ? finalScale : 1);
  while (n > 1) {
    const partials = y;
    const groups = Math.ceil(n / CHUNK);
    y = groups === 1 ? out : gpu.tensor([groups], 'f32', `${op}.partials`);
    segments({ op, entry: 'main', bindings: [partials, y], len: n, seg: CHUNK, max, scale: groups === 1 ? finalScale : 1 });
    partials.release();   // dispatches recorded later may reuse the buffer; they run after this pass
    n = groups;
  }
}

/** Per-row sum, max or mean over the last dim: x [rows, n] → [rows]. */
export function reduceRows(x: Tensor, kind: ReduceOp, opts: { out?: Tensor } = {}): Tensor {
  const op = `reduceRows ${kind}`;
  expectTensor(op, 'x', x, [null, null]);
  const [rows, n] = x.shape;
  if (n === 0) fail(op, `x ${fmtShape(x.shape)} has empty rows`);
  const out = outTensor(op, x, opts.out, [rows]);
  segments({
    op, entry: 'main', bindings: [x, out], len: rows * n, seg: n,
    max: kind === 'max', scale: kind === 'mean' ? 1 / n : 1, threads: rowThreads(n),
  });
  return out;
}

function expectNonEmpty(op: string, name: string, t: Tensor): void {
  if (t.dtype !== 'f32') fail(op, `${name} must be f32, got ${t.dtype} ${fmtShape(t.shape)}`);
  if (t.size === 0) fail(op, `${name} ${fmtShape(t.shape)} is empty`);
}

/** Sum, max or mean of every element: x (any shape) → [1]. */
export function reduceAll(x: Tensor, kind: ReduceOp, opts: { out?: Tensor } = {}): Tensor {
  const op = `reduceAll ${kind}`;
  expectNonEmpty(op, 'x', x);
  const out = outTensor(op, x, opts.out, [1]);
  const max = kind === 'max';
  wholeTensor(op, x.gpu, x.size, max, kind === 'mean' ? 1 / x.size : 1, out, (y, scale) =>
    segments({ op, entry: 'main', bindings: [x, y], len: x.size, seg: CHUNK, max, scale }));
  return out;
}

function expectPair(op: string, a: Tensor, b: Tensor): void {
  expectNonEmpty(op, 'a', a);
  expectTensor(op, 'b', b, a.shape);
}

/** Mean squared error over whole tensors: mean((a − b)²) → [1]. a, b: the same shape. */
export function mse(a: Tensor, b: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'mse';
  expectPair(op, a, b);
  const out = outTensor(op, a, opts.out, [1]);
  wholeTensor(op, a.gpu, a.size, false, 1 / a.size, out, (y, scale) =>
    segments({ op, entry: 'sqdiff', bindings: [a, b, y], len: a.size, seg: CHUNK, max: false, scale }));
  return out;
}

/** d(scale·mse(a, b))/da = 2(a − b)/count·scale, shaped like a (the gradient for b is its negation). */
export function mseBackward(a: Tensor, b: Tensor, opts: { scale?: number; out?: Tensor } = {}): Tensor {
  const op = 'mseBackward';
  const { scale = 1 } = opts;
  expectFinite(op, 'scale', scale);
  expectPair(op, a, b);
  const out = outTensor(op, a, opts.out, a.shape);
  elementwise(op, 'mse_grad', [a, b, out], a.size, { scale: (2 * scale) / a.size });
  return out;
}

/** One thread per element of len, over a 2-D grid of workgroups. */
function elementwise(op: string, entry: string, bindings: Tensor[], len: number, extra: Partial<ParamValues> = {}): void {
  bindings[0].gpu.dispatch({
    op,
    shapes: { x: bindings[0].shape },
    shader,
    entry,
    constants: { WG },
    params: params({ len, ...extra }),
    bindings,
    workgroups: grid(Math.ceil(len / WG)),
  });
}

function clear(op: string, t: Tensor): void {
  elementwise(op, 'clear', [t], t.size);
}

export interface HistogramOptions {
  bins: number;
  /** Bins split [lo, hi) evenly; values below lo land in bin 0, values ≥ hi in the last bin. */
  lo: number;
  hi: number;
  /** Add into the given counts and nan (profiling over many batches) instead of starting from zero. */
  accumulate?: boolean;
  counts?: Tensor;
  nan?: Tensor;
}

/** Counts x's values per bin: counts u32 [bins], and nan u32 [1] for NaNs (so nothing is dropped). */
export function histogram(x: Tensor, opts: HistogramOptions): { counts: Tensor; nan: Tensor } {
  const op = 'histogram';
  const { bins, accumulate = false } = opts;
  expectInt(op, 'bins', bins, 1, 1 << 24);
  expectFinite(op, 'lo', opts.lo);
  expectFinite(op, 'hi', opts.hi);
  // The kernel sees f32 bounds; they must stay ordered and their width finite once rounded.
  const lo = Math.fround(opts.lo), hi = Math.fround(opts.hi);
  const invWidth = Math.fround(bins / (hi - lo));
  if (!(lo < hi) || !Number.isFinite(invWidth)) fail(op, `need lo < hi with a finite f32 width, got [${opts.lo}, ${opts.hi})`);
  if (x.dtype !== 'f32') fail(op, `x must be f32, got ${x.dtype} ${fmtShape(x.shape)}`);
  if (accumulate && !(opts.counts && opts.nan)) fail(op, 'accumulate needs the counts and nan tensors to add into');
  const counts = outTensor(op, x, opts.counts, [bins], 'u32');
  const nan = outTensor(op, x, opts.nan, [1], 'u32');
  if (!accumulate) {
    clear(op, counts);
    clear(op, nan);
  }
  elementwise(op, 'histogram', [x, counts, nan], x.size, { bins, lo, hi, invWidth });
  return { counts, nan };
}

/**
 * Counts how many of `ids` (u32) equal each of 0 … bins−1 into counts u32 [bins]; ids ≥ bins are skipped.
 * With `accumulate`, adds into the given counts (one expert-load tally over many forward calls).
 */
export function bincount(ids: Tensor, opts: { bins: number; counts?: Tensor; accumulate?: boolean }): Tensor {
  const op = 'bincount';
  const { bins, accumulate = false } = opts;
  expectInt(op, 'bins', bins, 1, 1 << 24);
  if (ids.dtype !== 'u32') fail(op, `ids must be u32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
  if (accumulate && !opts.counts) fail(op, 'accumulate needs the counts tensor to add into');
  const counts = outTensor(op, ids, opts.counts, [bins], 'u32');
  if (!accumulate) clear(op, counts);
  elementwise(op, 'bincount', [ids, counts], ids.size, { bins });
  return counts;
}

/** Number of NaN and ±Inf elements of x → u32 [1]. */
export function countNonFinite(x: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'countNonFinite';
  if (x.dtype !== 'f32') fail(op, `x must be f32, got ${x.dtype} ${fmtShape(x.shape)}`);
  const out = outTensor(op, x, opts.out, [1], 'u32');
  clear(op, out);
  elementwise(op, 'count_nonfinite', [x, out], x.size);
  return out;
}

/** Reads back countNonFinite(x) and throws OpArgumentError(op, ...) naming x and its shape if any. */
export async function assertFinite(x: Tensor, op: string): Promise<void> {
  const count = countNonFinite(x);
  let n: number;
  try {
    [n] = await count.read();
  } finally {
    count.release();
  }
  if (n > 0) fail(op, `${x.label} ${fmtShape(x.shape)} has ${n} non-finite values (NaN or ±Inf) among ${x.size}`);
}
