// The workbench's demo model (public/demo-model/, made by `npm run train:demo`): its folder is a complete
// Hugging Face checkpoint of the size metrics.json says, and it has learnt English word statistics: greedy
// text from "The" is mostly words of the Brown Corpus (a random-init model repeats the prompt's sub-word
// token, "TheTheThe…", which is no word), and its held-out perplexity is under an eighth of the vocabulary
// size (a model that learnt nothing scores about the vocabulary size, as a uniform guess does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTask } from '../src/cli/host.ts';
import { loadBrown } from '../src/data/brown-node.ts';
import { configFromHf } from '../src/model/config.ts';
import { expectedShapes, numel } from '../src/model/weights.ts';

const dir = fileURLToPath(new URL('../public/demo-model/', import.meta.url));
const FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'metrics.json'];

test('the demo model is a complete Hugging Face folder of the size its metrics state', () => {
  for (const f of FILES) assert.ok(existsSync(join(dir, f)), `public/demo-model/${f} is missing (npm run train:demo makes it)`);
  const config = configFromHf(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
  assert.equal(config.arch, 'llama');
  assert.deepEqual(config, metrics.config);
  const params = [...expectedShapes(config).values()].reduce((s, shape) => s + numel(shape), 0);
  assert.equal(params, metrics.params);
  // safetensors: an 8-byte header length, then the header naming every tensor with its offsets
  const st = readFileSync(join(dir, 'model.safetensors'));
  const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8'));
  for (const [name, shape] of expectedShapes(config)) assert.deepEqual(header[name]?.shape, shape, name);
  assert.equal(Object.keys(metrics.perplexity_valid.by_genre).length, 15, 'held-out perplexity for each of the 15 Brown genres');
});

test('the demo model writes Brown words greedily from "The" and its held-out perplexity is under an eighth of its vocabulary', async () => {
  const g = await runTask('generate', { model: dir, prompt: 'The', maxTokens: 48 }, () => {}, [dir]);
  const words = (g.text.match(/[A-Za-z]+/g) ?? []).map((w) => w.toLowerCase());
  const genres = await loadBrown();
  const vocabulary = new Set(genres.flatMap((d) => d.train.toLowerCase().match(/[a-z]+/g) ?? []));
  const known = words.filter((w) => vocabulary.has(w));
  console.log(`greedy from "The": ${JSON.stringify(g.text)} (${known.length} of ${words.length} words in the Brown vocabulary)`);
  assert.ok(words.length >= 12, `at least 12 words in 48 tokens, got ${words.length}`);
  assert.ok(known.length >= 0.8 * words.length, `at least 80% of the words are Brown words: ${known.length} of ${words.length}`);

  const text = join(mkdtempSync(join(tmpdir(), 'moefy-demo-')), 'brown-news.valid.txt');
  writeFileSync(text, genres.find((d) => d.name === 'brown-news')!.valid);
  const config = configFromHf(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const p = await runTask('ppl', { model: dir, text, window: 128, maxWindows: 2 }, () => {}, [dir, text]);
  console.log(`brown-news held-out perplexity ${p.ppl.toFixed(1)} over ${p.tokens} tokens (vocabulary ${config.vocabSize})`);
  assert.ok(p.ppl < config.vocabSize / 8, `perplexity ${p.ppl} is not under an eighth of the vocabulary size ${config.vocabSize}`);
});
