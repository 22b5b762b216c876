// Softmax wrappers over shaders/softmax.wgsl: row softmax and log-softmax over the last dim of [rows, n];
// the cross-entropy loss per row with its gradient, whole or one chunk of rows at a time; and the KL
// divergence of a student's distribution from a teacher's, for distillation, with its gradient.
import shader from '../../shaders/softmax.wgsl';
import type { Gpu } from '../gpu/device.ts';
import { fmtShape } from '../gpu/errors.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { rowThreads } from './reduce.ts';
import { expectFinite, expectInt, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['rows', 'u32'], ['n', 'u32'], ['scale', 'f32'], ['row0', 'u32']] as const);

/** Checks that `logits` (called `name` in errors) is f32 [rows, n] with n ≥ 1; returns [rows, n]. */
function rowsOf(op: string, logits: Tensor, name = 'logits'): [number, number] {
  expectTensor(op, name, logits, [null, null]);
  const [rows, n] = logits.shape;
  if (n === 0) fail(op, `${name} ${fmtShape(logits.shape)} has no classes to normalise over`);
  return [rows, n];
}

/** One workgroup per row of x, sized to the row (router logits over a few experts get 32 threads). */
function dispatchRows(
  op: string, entry: string, x: Tensor, bindings: Tensor[], shapes: Record<string, readonly number[]>,
  opts: { log?: boolean; scale?: number } = {},
): void {
  const [rows, n] = x.shape;
  const { log = false, scale = 1 } = opts;
  x.gpu.dispatch({
    op,
    shapes,
    shader,
    entry,
    constants: { WG: rowThreads(n), LOG: log },
    params: Params.pack({ rows, n, scale, row0: 0 }),
    bindings: [x, ...bindings],
    workgroups: grid(rows),
  });
}

/** Columns per ce_chunks invocation and invocations per workgroup of the ce_* passes (shaders/softmax.wgsl). */
const CE_CHUNK = 256;
const CE_WG = 64;

/**
 * The cross-entropy passes over logits [rows, n] (see shaders/softmax.wgsl): ce_chunks and ce_rows write
 * loss; with dlogits, ce_grad writes the gradient too.
 */
function crossEntropyPasses(
  op: string, logits: Tensor, targets: Tensor, loss: Tensor, dlogits: Tensor | null, scale: number, row0: number,
): void {
  const [rows, n] = logits.shape;
  const gpu = logits.gpu;
  const chunks = Math.ceil(n / CE_CHUNK);
  // Statistics (max, Σexp) per chunk of a row, then per row; ce_grad reads the latter.
  const chunkSt = gpu.tensor([rows * chunks, 2], 'f32', `${op}.chunkStats`);
  const rowSt = gpu.tensor([rows, 2], 'f32', `${op}.rowStats`);
  const params = Params.pack({ rows, n, scale, row0 });
  const shapes = { logits: logits.shape, targets: targets.shape };
  const pass = (entry: string, invocations: number, bindings: (Tensor | null)[]) =>
    gpu.dispatch({ op, shapes, shader, entry, params, bindings, workgroups: grid(Math.ceil(invocations / CE_WG)) });
  pass('ce_chunks', rows * chunks, [logits, null, null, null, chunkSt]);
  pass('ce_rows', rows, [logits, targets, loss, null, chunkSt, rowSt]);
  if (dlogits) pass('ce_grad', rows * n, [logits, targets, null, dlogits, null, rowSt]);
  chunkSt.release();   // recorded work keeps its binding; later ops may reuse the buffer
  rowSt.release();
}

function rowSoftmax(op: string, x: Tensor, log: boolean, out?: Tensor): Tensor {
  rowsOf(op, x, 'x');
  const y = outTensor(op, x, out, x.shape);
  dispatchRows(op, 'main', x, [y], { x: x.shape }, { log });
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

export interface CrossEntropyRows {
  /**
   * logits holds rows row0 .. row0 + rows − 1 of a longer sequence: targets and loss are then that
   * sequence's, [R] with R ≥ row0 + rows, and only the chunk's entries of loss are written. Without it,
   * targets and loss are [rows].
   */
  row0?: number;
}

/** Checks logits [rows, n] and targets u32 [R] (see CrossEntropyRows); returns R. */
function expectTargets(op: string, logits: Tensor, targets: Tensor, row0: number | undefined): number {
  const [rows] = rowsOf(op, logits);
  if (row0 === undefined) {
    expectTensor(op, 'targets', targets, [rows], 'u32');
    return rows;
  }
  expectTensor(op, 'targets', targets, [null], 'u32');
  const R = targets.shape[0];
  expectInt(op, 'row0', row0, 0, R);
  if (row0 + rows > R) {
    fail(op, `rows ${row0} .. ${row0 + rows - 1} of logits ${fmtShape(logits.shape)} lie past targets ${fmtShape(targets.shape)}`);
  }
  return R;
}

/**
 * Cross-entropy per row: logits [rows, n], targets u32 [rows] → loss [rows] = logsumexp − logit[target]
 * (for a chunk of a longer sequence, see CrossEntropyRows). A target ≥ n yields NaN for its row (the
 * host cannot see GPU targets; see crossEntropyFromTargets).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: { out?: Tensor } & CrossEntropyRows = {}): Tensor {
  const op = 'crossEntropy';
  const R = expectTargets(op, logits, targets, opts.row0);
  const loss = outTensor(op, logits, opts.out, [R]);
  crossEntropyPasses(op, logits, targets, loss, null, 1, opts.row0 ?? 0);
  return loss;
}

/**
 * Loss and gradient in one pass: loss [rows] as crossEntropy, and
 * dlogits [rows, n] = (softmax(logits) − onehot(targets))·scale (scale = 1/rows for a mean over rows).
 * For a chunk of rows of a longer sequence (CrossEntropyRows), loss and targets are the sequence's and
 * dlogits the chunk's, so an LM head applied chunk by chunk never holds all [R, vocab] logits; see
 * crossEntropyChunkRows for a chunk size.
 */
export function crossEntropyBackward(
  logits: Tensor,
  targets: Tensor,
  opts: { scale?: number; loss?: Tensor; dlogits?: Tensor } & CrossEntropyRows = {},
): { loss: Tensor; dlogits: Tensor } {
  const op = 'crossEntropyBackward';
  const { scale = 1, row0 } = opts;
  expectFinite(op, 'scale', scale);
  const R = expectTargets(op, logits, targets, row0);
  const loss = outTensor(op, logits, opts.loss, [R]);
  const dlogits = outTensor(op, logits, opts.dlogits, logits.shape);
  crossEntropyPasses(op, logits, targets, loss, dlogits, scale, row0 ?? 0);
  return { loss, dlogits };
}

/**
 * Rows per chunk for a chunked cross-entropy over n classes: the most rows whose [rows, n] f32 logits and
 * dlogits together fit in `budgetBytes`, and each in one storage binding of this device; at least 1.
 */
export function crossEntropyChunkRows(gpu: Gpu, n: number, budgetBytes = 256 * 2 ** 20): number {
  const op = 'crossEntropyChunkRows';
  expectInt(op, 'n', n, 1, 2 ** 32 - 1);
  expectFinite(op, 'budgetBytes', budgetBytes);
  const rowBytes = 4 * n;
  const perBinding = Math.floor(gpu.limits.maxStorageBufferBindingSize / rowBytes);
  if (perBinding < 1) fail(op, `one row of ${n} f32 logits exceeds maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}`);
  return Math.max(1, Math.min(perBinding, Math.floor(budgetBytes / (2 * rowBytes))));
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

/** Checks teacher pLogits [rows, n] and student qLogits of the same shape; returns rows. */
function klArgs(op: string, pLogits: Tensor, qLogits: Tensor): number {
  const [rows] = rowsOf(op, pLogits, 'pLogits');
  expectTensor(op, 'qLogits', qLogits, pLogits.shape);
  return rows;
}

/**
 * KL(softmax(pLogits) ‖ softmax(qLogits)) per row, for distillation: teacher pLogits and student qLogits
 * [rows, n] → [rows].
 */
export function klDivergence(pLogits: Tensor, qLogits: Tensor, opts: { out?: Tensor } = {}): Tensor {
  const op = 'klDivergence';
  const rows = klArgs(op, pLogits, qLogits);
  const loss = outTensor(op, pLogits, opts.out, [rows]);
  dispatchRows(op, 'kl', pLogits, [qLogits, loss], { pLogits: pLogits.shape, qLogits: qLogits.shape });
  return loss;
}

/**
 * Loss [rows] as klDivergence and its gradient with respect to the student in one pass:
 * dq [rows, n] = (softmax(qLogits) − softmax(pLogits))·scale. The teacher gets no gradient.
 */
export function klDivergenceBackward(
  pLogits: Tensor,
  qLogits: Tensor,
  opts: { scale?: number; loss?: Tensor; dq?: Tensor } = {},
): { loss: Tensor; dq: Tensor } {
  const op = 'klDivergenceBackward';
  const { scale = 1 } = opts;
  expectFinite(op, 'scale', scale);
  const rows = klArgs(op, pLogits, qLogits);
  const loss = outTensor(op, pLogits, opts.loss, [rows]);
  const dq = outTensor(op, pLogits, opts.dq, pLogits.shape);
  dispatchRows(op, 'kl_grad', pLogits, [qLogits, loss, dq], { pLogits: pLogits.shape, qLogits: qLogits.shape }, { scale });
  return { loss, dq };
}
