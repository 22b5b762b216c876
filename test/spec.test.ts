// The run spec: one table of fields; JSON in, validated, errors naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FIELDS, defaultSpec, parseSpec, specLayers, specToJson, SpecError } from '../src/state/spec.ts';

test('defaults come from the table and round-trip through nested JSON', () => {
  const d = defaultSpec();
  assert.equal(d['train.steps'], 4000);
  assert.equal(d['router.pU'], 0.25);
  assert.equal(d.seed, 0);
  assert.deepEqual(parseSpec(specToJson(d)), d);
  assert.equal(Object.keys(d).length, FIELDS.length);
});

test('flat and nested keys both parse', () => {
  const a = parseSpec({ train: { steps: 300, lr: 0.002 }, seed: 7 });
  const b = parseSpec({ 'train.steps': 300, 'train.lr': 0.002, seed: 7 });
  assert.deepEqual(a, b);
  assert.equal(a['train.steps'], 300);
});

test('bad specs are errors naming the field and the expectation', () => {
  const bad: [unknown, RegExp][] = [
    [{ train: { stepz: 3 } }, /unknown field 'train\.stepz'/],
    [{ train: { steps: 2.5 } }, /train\.steps must be an integer/],
    [{ train: { lr: -1 } }, /train\.lr must be ≥ 0/],
    [{ construct: { split: 'halves' } }, /construct\.split must be one of contiguous, random, coactivation, copy/],
    [{ router: { pU: 'a lot' } }, /router\.pU must be a finite number/],
    [{ version: 99 }, /version 99 is not supported/],
    [[1, 2], /must be a JSON object/],
  ];
  for (const [json, re] of bad) assert.throws(() => parseSpec(json, 'x.json'), (e: unknown) => e instanceof SpecError && re.test(e.message) && e.message.startsWith('x.json'));
});

test("construct.layers: 'last:m' and lists resolve against the model", () => {
  const s = (v: string) => parseSpec({ construct: { layers: v } });
  assert.deepEqual(specLayers(s('last:4'), 8), [4, 5, 6, 7]);
  assert.deepEqual(specLayers(s('7, 3,3'), 8), [3, 7]);
  assert.deepEqual(specLayers(s('last:0'), 8), []);
  assert.throws(() => specLayers(s('8'), 8), /outside 0\.\.7/);
});
