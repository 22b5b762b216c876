// Every kernel check (`moefy kernels check`) as one test each: GPU result vs float64 reference on fresh
// random inputs, outputs NaN-poisoned first; backward ops also finite-difference checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTask } from '../src/cli/host.ts';

const { device, reports } = await runTask('kernelsCheck', { seed: 20261122 });

for (const r of reports) {
  test(`${r.family}: ${r.name}`, () => {
    assert.ok(r.ok, `${r.name}: relative error ${r.err} > ${r.tol} on ${device}; per output ${JSON.stringify(r.outputs)}${r.error ? `; threw ${r.error}` : ''}`);
  });
}
