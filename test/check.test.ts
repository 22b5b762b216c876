// The verification harness itself must be able to fail: unwritten (NaN) outputs, wrong values and wrong
// gradients are caught. CPU only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { relL2 } from '../src/ops/check.ts';
import { dot, fdError } from '../src/ops/gradcheck.ts';
import { matmulRef } from '../src/ops/matmul.ref.ts';
import { Rng } from '../src/data/rng.ts';

test('relL2 is Infinity when any output was never written (NaN poison)', () => {
  const want = [1, 2, 3];
  assert.equal(relL2([1, NaN, 3], want), Infinity);
  assert.equal(relL2([1, 2, Infinity], want), Infinity);
  assert.equal(relL2([1, 2], want), Infinity);
});

test('relL2 measures relative error', () => {
  assert.equal(relL2([1, 2, 3], [1, 2, 3]), 0);
  assert.ok(Math.abs(relL2([1.1, 0], [1, 0]) - 0.1) < 1e-12);
  assert.equal(relL2([0.5], [0]), 0.5);
});

test('fdError accepts the true gradient of a matmul and rejects a slightly wrong one', () => {
  const rng = new Rng(3);
  const [M, N, K] = [4, 5, 6];
  const A = rng.normals(M * K), B = rng.normals(K * N), G = rng.normals(M * N);
  const loss = (x: Float64Array) => dot(G, matmulRef(x, B, M, N, K));
  const grad = matmulRef(G, B, M, K, N, false, true);
  assert.ok(fdError(loss, A, grad, rng) < 1e-8);
  const wrong = grad.map((g) => g * 1.001);
  assert.ok(fdError(loss, A, wrong, rng) > 1e-4);
});

test('Rng is reproducible per seed and differs across seeds', () => {
  const a = new Rng(42).normals(8), b = new Rng(42).normals(8), c = new Rng(43).normals(8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});
