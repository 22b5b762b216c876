// The `moefy` command as a user runs it: exit codes, JSON output, usage errors, a run's checkpoint folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killedRun } from './killed-run.ts';

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

/** The reduced v2 example with the test assets' paths, v2.compare off, checkpoints in `ckpt`, written to `file`. */
function tinyV2Spec(file: string, ckpt: string, train: Record<string, unknown> = {}): string {
  const example = JSON.parse(readFileSync(fileURLToPath(new URL('../examples/llama-moe-v2-stories260K-tiny.json', import.meta.url)), 'utf8'));
  const spec = {
    ...example, model: `${shared}models/stories260K/stories260K.bin`, tokenizer: `${shared}models/stories260K/tok512.bin`, data: `${shared}data/corpus`,
    v2: { ...example.v2, compare: false }, train: { ...example.train, ...train }, checkpoint: { dir: ckpt },
  };
  writeFileSync(file, JSON.stringify(spec));
  return file;
}

test('moefy run with checkpoint.dir: a finished construction is kept (every method may use the folders its spec names) and read back; a run killed mid-way through stage 2 resumes from its stages\' snapshots to the same scores', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-cli-'));
  try {
    const whole = tinyV2Spec(join(dir, 'whole.json'), join(dir, 'whole'));
    const first = moefy('run', whole, '--json');
    assert.equal(first.status, 0, first.stderr.slice(-2000));
    assert.match(first.stderr, /stage 1: training \d+ of \d+ parameters/);
    assert.deepEqual(readdirSync(join(dir, 'whole')).filter((f) => f.startsWith('v2-')), ['v2-0.json'], 'the finished construction is kept');
    for (const stage of [1, 2]) assert.deepEqual(readdirSync(join(dir, 'whole', `train-v2-0-stage${stage}`)), [], 'its snapshots are cleared once it is kept');
    const points = (r: { stdout: string }) => JSON.parse(r.stdout).metrics.points;
    const again = moefy('run', whole, '--json');
    assert.equal(again.status, 0, again.stderr.slice(-2000));
    assert.doesNotMatch(again.stderr, /stage 1: training/, 'read back, not trained again');
    assert.deepEqual(points(again), points(first));

    // snapshots every 2 of the 4 steps of each stage; killed once stage 2 saved its step 2
    const split = tinyV2Spec(join(dir, 'split.json'), join(dir, 'split'), { checkpointEvery: 2 });
    await killedRun(['run', split, '--json'], join(dir, 'split', 'train-v2-0-stage2', 'train-step-00000002.json'));
    const resumed = moefy('run', split, '--json');
    assert.equal(resumed.status, 0, resumed.stderr.slice(-2000));
    assert.match(resumed.stderr, /stage 1: resuming from its snapshot at step 4 of 4/);
    assert.match(resumed.stderr, /stage 2: resuming from its snapshot at step [24] of 4/);
    assert.deepEqual(points(resumed), points(first));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
