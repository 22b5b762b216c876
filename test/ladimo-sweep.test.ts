// The sweep's Pareto front: a row is on it unless another row has lower-or-equal perplexity and
// activated parameters, better in at least one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { paretoFront } from '../src/methods/ladimo/sweep.ts';

test('paretoFront marks exactly the non-dominated rows', () => {
  const rows = [
    { name: 'a', ppl_moe: 10, activated_non_embedding_moe: 100 },
    { name: 'b', ppl_moe: 9, activated_non_embedding_moe: 120 },
    { name: 'c', ppl_moe: 11, activated_non_embedding_moe: 110 }, // dominated by a
    { name: 'd', ppl_moe: 10, activated_non_embedding_moe: 100 }, // ties a: neither dominates
    { name: 'e', ppl_moe: 12, activated_non_embedding_moe: 90 },
  ];
  const front = paretoFront(rows).filter((r) => r.pareto).map((r) => r.name);
  assert.deepEqual(front, ['a', 'b', 'd', 'e']);
});
