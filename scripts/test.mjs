// Runs every test (test/*.test.ts, then e2e/*.e2e.ts) with node:test and ends with the line
// "N passed, N failed, N skipped" that CI reads. Usage: node scripts/test.mjs [files...]
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { run } from 'node:test';

const root = new URL('..', import.meta.url).pathname;
const register = pathToFileURL(join(root, 'bin/register.mjs')).href;
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${register}`.trim();

const list = (dir, suffix) =>
  readdirSync(join(root, dir)).filter((f) => f.endsWith(suffix)).sort().map((f) => join(root, dir, f));
const files = process.argv.length > 2 ? process.argv.slice(2) : [...list('test', '.test.ts'), ...list('e2e', '.e2e.ts')];

let passed = 0, failed = 0, skipped = 0;
const t0 = Date.now();
const stream = run({ files, concurrency: 1, timeout: 30 * 60 * 1000 });
stream.on('test:pass', (e) => {
  if (e.details?.type === 'suite') return;
  if (e.skip || e.todo) {
    skipped++;
    console.log(`- ${e.name} # SKIP ${typeof e.skip === 'string' ? e.skip : ''}`);
  } else {
    passed++;
    console.log(`✔ ${e.name} (${Math.round(e.details?.duration_ms ?? 0)} ms)`);
  }
});
stream.on('test:fail', (e) => {
  if (e.details?.type === 'suite') return;
  failed++;
  const err = e.details?.error;
  console.log(`✖ ${e.name}\n    ${String(err?.cause?.stack ?? err?.cause ?? err?.message ?? err).split('\n').join('\n    ')}`);
});
stream.on('test:stderr', (e) => process.stderr.write(e.message));
stream.on('test:stdout', (e) => process.stdout.write(e.message));
// The stream must be consumed for events to flow.
for await (const _ of stream);
console.log(`\ntests took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
