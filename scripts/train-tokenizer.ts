// Trains the demo model's tokenizer: byte-level BPE (src/data/bpe.ts) on the Brown Corpus train split,
// written as a Hugging Face tokenizer: DIR/tokenizer.json and DIR/tokenizer_config.json.
// Usage: node --import ./bin/register.mjs scripts/train-tokenizer.ts --vocab 4096 --out DIR [--min-frequency 2]
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BpeError, tokenizerConfigJson, trainByteLevelBpe } from '../src/data/bpe.ts';
import { loadBrown } from '../src/data/brown-node.ts';

const USAGE = 'usage: node --import ./bin/register.mjs scripts/train-tokenizer.ts --vocab 4096 --out DIR [--min-frequency 2]';

function fail(message: string): never {
  console.error(`train-tokenizer: ${message}\n${USAGE}`);
  process.exit(2);
}

function positiveInt(flag: string, value: string | undefined, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  const n = Number(value);
  if (value === undefined || !Number.isSafeInteger(n) || n < 1) fail(`--${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

let values;
try {
  ({ values } = parseArgs({ options: { vocab: { type: 'string' }, out: { type: 'string' }, 'min-frequency': { type: 'string' } } }));
} catch (e) {
  fail((e as Error).message);
}
const vocabSize = positiveInt('vocab', values.vocab);
const minFrequency = positiveInt('min-frequency', values['min-frequency'], 2);
const out = values.out ?? fail('--out DIR is required');

const domains = await loadBrown();
const t0 = performance.now();
let tok;
try {
  tok = trainByteLevelBpe(
    domains.map((d) => d.train),
    { vocabSize, minFrequency },
  );
} catch (e) {
  fail(e instanceof BpeError ? e.message : String(e));
}
const seconds = (performance.now() - t0) / 1000;
const size = Object.keys(tok.model.vocab).length;

await mkdir(out, { recursive: true });
await writeFile(join(out, 'tokenizer.json'), `${JSON.stringify(tok)}\n`);
await writeFile(join(out, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfigJson(), null, 2)}\n`);
console.log(
  `${join(out, 'tokenizer.json')}: ${size} tokens (${tok.model.merges.length} merges) from the Brown train split of ` +
    `${domains.length} genres, trained in ${seconds.toFixed(1)} s`,
);
if (size < vocabSize) console.log(`note: no pair occurs ${minFrequency} times any more, so the vocabulary stops at ${size}, not ${vocabSize}`);
