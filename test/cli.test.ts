// The `moefy` command as a user runs it: exit codes, JSON output, usage errors, a run's checkpoint folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

const shared = fileURLToPath(new URL('../../shared/', import.meta.url));
const skip = existsSync(shared) ? false : `test assets not found at ${shared} (../shared beside the repo)`;

test('moefy run on an example spec with checkpoint.dir writes its pieces there (every method may use the folders its spec names), then resumes from them', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-cli-'));
  try {
    const example = JSON.parse(readFileSync(fileURLToPath(new URL('../examples/llama-moe-v2-stories260K-tiny.json', import.meta.url)), 'utf8'));
    const spec = {
      ...example, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus`,
      v2: { ...example.v2, compare: false }, checkpoint: { dir: join(dir, 'ckpt') },
    };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    const first = moefy('run', join(dir, 'spec.json'), '--json');
    assert.equal(first.status, 0, first.stderr.slice(-2000));
    assert.ok(readdirSync(join(dir, 'ckpt')).includes('v2-0.json'), `the finished construction is kept: ${readdirSync(join(dir, 'ckpt'))}`);
    const again = moefy('run', join(dir, 'spec.json'), '--json');
    assert.equal(again.status, 0, again.stderr.slice(-2000));
    assert.match(first.stderr, /stage 1: training \d+ of \d+ parameters/);
    assert.doesNotMatch(again.stderr, /stage 1: training/, 'read back, not trained again');
    const points = (r: typeof first) => JSON.parse(r.stdout).metrics.points;
    assert.deepEqual(points(again), points(first));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
