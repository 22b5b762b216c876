import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned, relL2 } from './check.ts';
import { fdError, withFd } from './gradcheck.ts';
import {
  crossEntropy, crossEntropyBackward, crossEntropyChunkRows, crossEntropyFromTargets, klDivergence, klDivergenceBackward,
  logSoftmax, softmax,
} from './softmax.ts';
import { crossEntropyGradRef, crossEntropyRef, klGradRef, klRef, softmaxRef } from './softmax.ref.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { Rng } from '../data/rng.ts';

interface Shape { rows: number; n: number; offset?: number; smoke?: boolean }

// n: size 1, ragged small, exactly one 64-thread span, ragged over 256, many 256-spans per thread.
// offset shifts every logit: exp(90 + x) overflows f32, so only a max-subtracted kernel passes.
const shapes: Shape[] = [
  { rows: 1, n: 1 },
  { rows: 3, n: 5, smoke: true },
  { rows: 4, n: 64 },
  { rows: 7, n: 300, offset: 90 },
  { rows: 2, n: 4096 },
];

const label = (s: Shape) => `[${s.rows}, ${s.n}]${s.offset ? ` +${s.offset}` : ''}`;

function logits(rng: Rng, s: Shape): Float32Array {
  return rng.normals(s.rows * s.n, 3).map((x) => x + (s.offset ?? 0));
}

function targetsFor(rng: Rng, rows: number, n: number): Uint32Array {
  return Uint32Array.from({ length: rows }, () => rng.int(n));
}

const forward: CheckCase[] = [false, true].flatMap((log) => shapes.map((s): CheckCase => ({
  family: 'softmax',
  name: `${log ? 'logSoftmax' : 'softmax'} ${label(s)}`,
  tol: TOL.elementwise,
  smoke: s.smoke && !log,
  async run(gpu, rng) {
    const X = logits(rng, s);
    const x = gpu.upload(X, [s.rows, s.n], 'x');
    const out = poisoned(gpu, [s.rows, s.n]);
    (log ? logSoftmax : softmax)(x, { out });
    return compare({ Y: [out, softmaxRef(X, s.rows, s.n, log)] }, [x, out]);
  },
})));

// More rows than one grid dimension holds (65535): the row index must be linearised over x and y.
const manyRows: CheckCase = {
  family: 'softmax',
  name: 'softmax [65537, 2] (2-D workgroup grid)',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const [rows, n] = [65537, 2];
    const X = rng.normals(rows * n, 3);
    const x = gpu.upload(X, [rows, n], 'x');
    const out = poisoned(gpu, [rows, n]);
    softmax(x, { out });
    return compare({ Y: [out, softmaxRef(X, rows, n)] }, [x, out]);
  },
};

const ceForward: CheckCase[] = shapes.map((s) => ({
  family: 'softmax',
  name: `crossEntropy ${label(s)}`,
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const X = logits(rng, s), T = targetsFor(rng, s.rows, s.n);
    const x = gpu.upload(X, [s.rows, s.n], 'logits'), t = gpu.upload(T, [s.rows], 'targets');
    const out = poisoned(gpu, [s.rows]);
    crossEntropy(x, t, { out });
    return compare({ loss: [out, crossEntropyRef(X, T, s.rows, s.n)] }, [x, t, out]);
  },
}));

// dlogits against the float64 gradient, which is itself checked against finite differences of the loss.
// n: within one 256-column chunk of ce_chunks, two, and five with the last ragged (logits past exp's range).
const ceBackward: CheckCase[] = [
  { rows: 5, n: 37, smoke: true },
  { rows: 3, n: 300 },
  { rows: 4, n: 1030, offset: 90 },
].map((s) => ({
  family: 'softmax',
  name: `crossEntropyBackward ${label(s)} scale 1/${s.rows} (finite differences)`,
  tol: TOL.grad,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { rows, n } = s;
    const scale = 1 / rows;
    const X = logits(rng, s), T = targetsFor(rng, rows, n);
    const dRef = crossEntropyGradRef(X, T, rows, n, scale);
    const fd = fdError((x) => scale * crossEntropyRef(x, T, rows, n).reduce((a, b) => a + b, 0), X, dRef, rng);
    const x = gpu.upload(X, [rows, n], 'logits'), t = gpu.upload(T, [rows], 'targets');
    const loss = poisoned(gpu, [rows]), dlogits = poisoned(gpu, [rows, n]);
    crossEntropyBackward(x, t, { scale, loss, dlogits });
    const r = await compare({ loss: [loss, crossEntropyRef(X, T, rows, n)], dlogits: [dlogits, dRef] }, [x, t, loss, dlogits]);
    return withFd(r, { dlogits: fd });
  },
}));

// A GPU target ≥ n turns exactly its row into NaN (loss and gradient); host targets ≥ n, and a chunk of rows
// reaching past the targets, throw before any work.
const badTarget: CheckCase = {
  family: 'softmax',
  name: 'crossEntropy target ≥ n: NaN row on GPU, host targets throw; chunk past the targets throws',
  tol: TOL.elementwise,
  async run(gpu, rng) {
    const [rows, n, badRow] = [4, 7, 2];
    const X = rng.normals(rows * n, 3), T = targetsFor(rng, rows, n);
    const withBad = (v: number) => T.map((t, r) => (r === badRow ? v : t));
    const Lref = crossEntropyRef(X, T, rows, n), Dref = crossEntropyGradRef(X, T, rows, n);
    const x = gpu.upload(X, [rows, n], 'logits'), t = gpu.upload(withBad(n), [rows], 'targets');
    const { loss, dlogits } = crossEntropyBackward(x, t);
    const L = await loss.read(), D = await dlogits.read();
    const others = (a: ArrayLike<number>, w: number) => Array.from(a).filter((_, i) => Math.floor(i / w) !== badRow);
    const nanRow = Number.isNaN(L[badRow]) && D.slice(badRow * n, badRow * n + n).every(Number.isNaN);
    let message = '';
    try {
      crossEntropyFromTargets(x, withBad(9));
    } catch (e) {
      message = (e as Error).message;
    }
    let chunkMessage = '';
    try {
      crossEntropyBackward(x, t, { row0: 1 });   // rows 1 .. 4 of a 4-row sequence
    } catch (e) {
      chunkMessage = (e as Error).message;
    }
    const host = crossEntropyFromTargets(x, T);
    const hostErr = relL2(await host.loss.read(), Lref);
    for (const tt of [x, t, loss, dlogits, host.loss, host.targets]) tt.release();
    const outputs = {
      loss_other_rows: relL2(others(L, 1), others(Lref, 1)),
      dlogits_other_rows: relL2(others(D, n), others(Dref, n)),
      nan_row: nanRow ? 0 : Infinity,
      host_throws: /target 9 .*n=7/.test(message) ? 0 : Infinity,
      chunk_past_targets_throws: /crossEntropyBackward: rows 1 \.\. 4 of logits \[4, 7\] lie past targets \[4\]/.test(chunkMessage) ? 0 : Infinity,
      host_targets_loss: hostErr,
    };
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

// The LM-head loss of a sequence chunk by chunk: each chunk's logits are [chunk, n] (uploaded here as the
// LM head would write them), targets and loss are the whole sequence's [R]; the chunk size comes from
// crossEntropyChunkRows with a budget of `chunk` rows, so the last chunk is ragged.
const ceChunked: CheckCase[] = [
  { R: 7, n: 37, chunk: 3, smoke: true },
  { R: 130, n: 300, chunk: 37 },
].map((s) => ({
  family: 'softmax',
  name: `crossEntropyBackward in chunks of ${s.chunk} rows [${s.R}, ${s.n}] scale 1/${s.R}`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { R, n } = s;
    const scale = 1 / R;
    const X = logits(rng, { rows: R, n }), T = targetsFor(rng, R, n);
    const chunk = crossEntropyChunkRows(gpu, n, s.chunk * 2 * 4 * n);
    const t = gpu.upload(T, [R], 'targets'), loss = poisoned(gpu, [R], 'f32', 'loss');
    const D = new Float32Array(R * n);
    const temps: Tensor[] = [];
    for (let row0 = 0; row0 < R; row0 += chunk) {
      const rows = Math.min(chunk, R - row0);
      const x = gpu.upload(X.subarray(row0 * n, (row0 + rows) * n), [rows, n], 'logits');
      const dlogits = poisoned(gpu, [rows, n]);
      crossEntropyBackward(x, t, { scale, row0, loss, dlogits });
      D.set(await dlogits.read(), row0 * n);
      temps.push(x, dlogits);
    }
    const r = await compare({ loss: [loss, crossEntropyRef(X, T, R, n)] }, [t, loss, ...temps]);
    r.outputs.dlogits = relL2(D, crossEntropyGradRef(X, T, R, n, scale));
    r.outputs.chunk_rows_off = Math.abs(chunk - s.chunk);
    r.err = Math.max(r.err, r.outputs.dlogits, chunk === s.chunk ? 0 : Infinity);
    return r;
  },
}));

// Near the teacher the KL is a small sum of terms of both signs, so exp's allowed error (3 + 2|x| ulp in
// WGSL, which SwiftShader uses) shows: about 3e-6 relative at noise 0.3, against 1e-7 for unrelated logits.
interface KlShape extends Shape {
  /** Student = teacher + noise of this scale (the near-converged regime of distillation); independent without. */
  near?: number;
}

// n: size 1 (KL 0), ragged small, ragged over 256 with logits shifted past exp's range, a vocabulary-sized row.
const klShapes: KlShape[] = [
  { rows: 3, n: 5 },
  { rows: 1, n: 1 },
  { rows: 7, n: 300, offset: 90 },
  { rows: 2, n: 4096 },
  { rows: 37, n: 64, near: 0.3 },
];

function klLabel(s: KlShape): string {
  return `${label(s)}${s.near ? ` student = teacher + ${s.near}·noise` : ''}`;
}

function klInputs(rng: Rng, s: KlShape): { P: Float32Array; Q: Float32Array } {
  const P = logits(rng, s);
  const Q = s.near ? P.map((x) => x + s.near! * rng.normal()) : logits(rng, s);
  return { P, Q };
}

const klForward: CheckCase[] = klShapes.map((s) => ({
  family: 'softmax',
  name: `klDivergence ${klLabel(s)}`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { P, Q } = klInputs(rng, s);
    const p = gpu.upload(P, [s.rows, s.n], 'pLogits'), q = gpu.upload(Q, [s.rows, s.n], 'qLogits');
    const out = poisoned(gpu, [s.rows]);
    klDivergence(p, q, { out });
    return compare({ kl: [out, klRef(P, Q, s.rows, s.n)] }, [p, q, out]);
  },
}));

// dq against the float64 gradient, which is checked against finite differences of scale·Σ_r KL_r in q.
const klBackward: CheckCase[] = [
  { rows: 5, n: 37, smoke: true },
  { rows: 3, n: 300, offset: 90 },
  { rows: 130, n: 33, near: 0.3 },
].map((s: KlShape) => ({
  family: 'softmax',
  name: `klDivergenceBackward ${klLabel(s)} scale 1/${s.rows} (finite differences)`,
  tol: TOL.elementwise,
  smoke: s.smoke,
  async run(gpu, rng) {
    const { rows, n } = s;
    const scale = 1 / rows;
    const { P, Q } = klInputs(rng, s);
    const dRef = klGradRef(P, Q, rows, n, scale);
    const fd = fdError((q) => scale * klRef(P, q, rows, n).reduce((a, b) => a + b, 0), Q, dRef, rng);
    const p = gpu.upload(P, [rows, n], 'pLogits'), q = gpu.upload(Q, [rows, n], 'qLogits');
    const loss = poisoned(gpu, [rows]), dq = poisoned(gpu, [rows, n]);
    klDivergenceBackward(p, q, { scale, loss, dq });
    const r = await compare({ loss: [loss, klRef(P, Q, rows, n)], dq: [dq, dRef] }, [p, q, loss, dq]);
    return withFd(r, { dq: fd });
  },
}));

export const softmaxChecks: CheckCase[] = [
  ...forward, manyRows, ...ceForward, ...ceBackward, ...ceChunked, badTarget, ...klForward, ...klBackward,
];
