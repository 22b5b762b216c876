import type { CheckCase } from './check.ts';
import { TOL, compare, poisoned, relL2 } from './check.ts';
import { fdError } from './gradcheck.ts';
import { crossEntropy, crossEntropyBackward, crossEntropyFromTargets, logSoftmax, softmax } from './softmax.ts';
import { crossEntropyGradRef, crossEntropyRef, softmaxRef } from './softmax.ref.ts';
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
const ceBackward: CheckCase[] = [
  { rows: 5, n: 37, smoke: true },
  { rows: 3, n: 300 },
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
    r.outputs.fd_dlogits = fd;
    r.err = Math.max(r.err, fd);
    return r;
  },
}));

// A GPU target ≥ n turns exactly its row into NaN (loss and gradient); host targets ≥ n throw before any work.
const badTarget: CheckCase = {
  family: 'softmax',
  name: 'crossEntropy target ≥ n: NaN row on GPU, host targets throw',
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
    const host = crossEntropyFromTargets(x, T);
    const hostErr = relL2(await host.loss.read(), Lref);
    for (const tt of [x, t, loss, dlogits, host.loss, host.targets]) tt.release();
    const outputs = {
      loss_other_rows: relL2(others(L, 1), others(Lref, 1)),
      dlogits_other_rows: relL2(others(D, n), others(Dref, n)),
      nan_row: nanRow ? 0 : Infinity,
      host_throws: /target 9 .*n=7/.test(message) ? 0 : Infinity,
      host_targets_loss: hostErr,
    };
    return { err: Math.max(...Object.values(outputs)), outputs };
  },
};

export const softmaxChecks: CheckCase[] = [...forward, manyRows, ...ceForward, ...ceBackward, badTarget];
