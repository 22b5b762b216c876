// Softmax wrappers over shaders/softmax.wgsl: row softmax and log-softmax over the last dim of [rows, n],
// and the cross-entropy loss per row with its gradient.
import shader from '../../shaders/softmax.wgsl';
import { fmtShape } from '../gpu/errors.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { rowThreads } from './reduce.ts';
import { expectFinite, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['rows', 'u32'], ['n', 'u32'], ['scale', 'f32']] as const);

/** Checks logits is f32 [rows, n] with n ≥ 1; returns [rows, n]. */
function rowsOf(op: string, logits: Tensor): [number, number] {
  expectTensor(op, 'logits', logits, [null, null]);
  const [rows, n] = logits.shape;
  if (n === 0) fail(op, `logits ${fmtShape(logits.shape)} has no classes to normalise over`);
  return [rows, n];
}

/** One workgroup per row, sized to the row (router logits over a few experts get 32 threads). */
function dispatchRows(
  op: string, entry: string, logits: Tensor, bindings: Tensor[],
  constants: Record<string, boolean>, scale = 1,
): void {
  const [rows, n] = logits.shape;
  logits.gpu.dispatch({
    op,
    shapes: { logits: logits.shape },
    shader,
    entry,
    constants: { WG: rowThreads(n), ...constants },
    params: Params.pack({ rows, n, scale }),
    bindings: [logits, ...bindings],
    workgroups: grid(rows),
  });
}

function rowSoftmax(op: string, x: Tensor, log: boolean, out?: Tensor): Tensor {
  rowsOf(op, x);
  const y = outTensor(op, x, out, x.shape);
  dispatchRows(op, 'main', x, [y], { LOG: log });
  return y;
}

/** softmax over the last dim: x [rows, n] → [rows, n]. */
export function softmax(x: Tensor, opts: { out?: Tensor } = {}): Tensor {
  return rowSoftmax('softmax', x, false, opts.out);
}

/** log-softmax over the last dim: x [rows, n] → [rows, n]. */
export function logSoftmax(x: Tensor, opts: { out?: Tensor } = {}): Tensor {
  return rowSoftmax('logSoftmax', x, true, opts.out);
}

function expectTargets(op: string, logits: Tensor, targets: Tensor): [number, number] {
  const [rows, n] = rowsOf(op, logits);
  expectTensor(op, 'targets', targets, [rows], 'u32');
  return [rows, n];
}

/**
 * Cross-entropy per row: logits [rows, n], targets u32 [rows] → loss [rows] = logsumexp − logit[target].
 * A target ≥ n yields NaN for its row (the host cannot see GPU targets; see crossEntropyFromTargets).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'crossEntropy';
  const [rows] = expectTargets(op, logits, targets);
  const loss = outTensor(op, logits, opts.out, [rows]);
  dispatchRows(op, 'cross_entropy', logits, [targets, loss], {});
  return loss;
}

/**
 * Loss and gradient in one pass: loss [rows] as crossEntropy, and
 * dlogits [rows, n] = (softmax(logits) − onehot(targets))·scale (scale = 1/rows for a mean over rows).
 */
export function crossEntropyBackward(
  logits: Tensor,
  targets: Tensor,
  opts: { scale?: number; loss?: Tensor; dlogits?: Tensor } = {},
): { loss: Tensor; dlogits: Tensor } {
  const op = 'crossEntropyBackward';
  const { scale = 1 } = opts;
  expectFinite(op, 'scale', scale);
  const [rows] = expectTargets(op, logits, targets);
  const loss = outTensor(op, logits, opts.loss, [rows]);
  const dlogits = outTensor(op, logits, opts.dlogits, logits.shape);
  dispatchRows(op, 'cross_entropy_grad', logits, [targets, loss, dlogits], {}, scale);
  return { loss, dlogits };
}

/**
 * crossEntropy with host targets, which are checked first (throws naming the bad target and n).
 * Returns the uploaded targets too, for crossEntropyBackward; the caller releases them.
 */
export function crossEntropyFromTargets(
  logits: Tensor,
  targets: Uint32Array,
  opts: { out?: Tensor } = {},
): { loss: Tensor; targets: Tensor } {
  const op = 'crossEntropy';
  const [rows, n] = rowsOf(op, logits);
  if (targets.length !== rows) fail(op, `${targets.length} targets for logits ${fmtShape(logits.shape)} (${rows} rows)`);
  const bad = targets.findIndex((t) => t >= n);
  if (bad >= 0) fail(op, `target ${targets[bad]} at row ${bad} is out of range for n=${n} classes (logits ${fmtShape(logits.shape)})`);
  const t = logits.gpu.upload(targets, [rows], 'targets');
  return { loss: crossEntropy(logits, t, opts), targets: t };
}
