// The `moefy` command as a user runs it: exit codes, JSON output, usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/moefy.mjs', import.meta.url));
const moefy = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 300_000 });

test('moefy kernels check --json prints a report and exits 0 when every case passes', () => {
  const r = moefy('kernels', 'check', '--json', '--filter', 'matmul A·B M37');
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.ok(report.reports.length >= 1);
  assert.ok(report.reports.every((c: { ok: boolean; err: number }) => c.ok && c.err < 1e-4));
});

test('moefy kernels bench --json reports GFLOP/s for the small suite', () => {
  const r = moefy('kernels', 'bench', '--json', '--suite', 'small', '--filter', 'gemm 1024', '--samples', '1');
  assert.equal(r.status, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.equal(res.suite, 'small');
  assert.equal(res.rows.length, 1);
  assert.ok(res.rows[0].gflops > 0 && Number.isFinite(res.rows[0].ms));
});

test('unknown commands and bad flags exit 2 with usage', () => {
  const a = moefy('frobnicate');
  assert.equal(a.status, 2);
  assert.match(a.stderr, /unknown command/);
  const b = moefy('kernels', 'bench', '--suite', 'huge');
  assert.equal(b.status, 2);
  assert.match(b.stderr, /--suite must be small or full/);
  const c = moefy('kernels', 'check', '--seed', 'x');
  assert.equal(c.status, 2);
  assert.match(c.stderr, /--seed must be an integer/);
});
