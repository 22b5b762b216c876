// Hugging Face Hub sources (src/model/source-hub.ts) against a fake Hub on 127.0.0.1: repo listings and the
// files a checkpoint needs, the Hub's refusals (404, gated 401/403), and resumable cached downloads (a
// connection dropped half-way, a server that ignores Range, a cancel, retries that run out). The injected
// fetch maps https://huggingface.co to the local server and refuses any other host, so nothing here
// touches the network.
//
//   node --import ./bin/register.mjs --test test/model-hub.test.ts
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  download,
  DownloadAbortedError,
  DownloadError,
  HubError,
  memoryBlobCache,
  parseRepoId,
  resolveHubFiles,
  type BlobCache,
  type DownloadProgress,
  type FetchLike,
} from '../src/model/source-hub.ts';
import { openCheckpoint } from '../src/model/load.ts';

const MODELS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'models');
const COMMIT = 'c0ffee0000000000000000000000000000000001';

// ---------------------------------------------------------------- the fake Hub

/** How the server misbehaves for one file. */
type Behaviour =
  | 'ok'
  /** The first full GET sends the headers and half the body, then drops the connection. */
  | 'drop-once'
  /** Every GET drops the connection after the headers and no body. */
  | 'drop-always'
  /** Answers every GET with 200 and the whole file, Range or not. */
  | 'ignore-range'
  /** Sends the body in 16 slices 15 ms apart (for cancelling mid-way). */
  | 'slow'
  | 'forbidden';

interface Repo {
  files: Map<string, Uint8Array>;
  behaviour?: Map<string, Behaviour>;
  /** The listing answers with this status instead (and X-Error-Code). */
  apiStatus?: [number, string];
  gated?: string;
}

interface Hit {
  path: string;
  range: string | undefined;
  status: number;
}

const repos = new Map<string, Repo>();
const hits: Hit[] = [];
const dropped = new Set<string>();
let server: Server;
let origin = '';

function handle(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = decodeURIComponent(url.pathname);
  const hit: Hit = { path, range: req.headers.range, status: 0 };
  hits.push(hit);
  const send = (status: number, body: string | Uint8Array, headers: Record<string, string> = {}) => {
    hit.status = status;
    res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };

  // GET /api/models/{owner}/{name}/revision/{rev}
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
  if (api) {
    const repo = repos.get(api[1]);
    if (!repo) return send(404, JSON.stringify({ error: 'Repository not found' }), { 'x-error-code': 'RepoNotFound' });
    if (repo.apiStatus) return send(repo.apiStatus[0], JSON.stringify({ error: 'denied' }), { 'x-error-code': repo.apiStatus[1] });
    const siblings = [...repo.files].map(([rfilename, b]) => ({ rfilename, size: b.byteLength }));
    return send(200, JSON.stringify({ id: api[1], sha: COMMIT, gated: repo.gated ?? false, siblings }), { 'content-type': 'application/json' });
  }

  // GET /{owner}/{name}/resolve/{rev}/{file}
  const file = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
  const repo = file && repos.get(file[1]);
  const bytes = file && repo?.files.get(file[3]);
  if (!file || !repo || !bytes) return send(404, 'Entry not found', { 'x-error-code': 'EntryNotFound' });
  const behaviour = repo.behaviour?.get(file[3]) ?? 'ok';
  const id = `${file[1]}/${file[3]}`;
  if (behaviour === 'forbidden') return send(403, 'Access to this file is restricted', { 'x-error-code': 'GatedRepo' });

  let start = 0;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range && behaviour !== 'ignore-range') {
    start = Number(range[1]);
    if (start >= bytes.byteLength) {
      hit.status = 416;
      res.writeHead(416, { 'content-range': `bytes */${bytes.byteLength}` });
      return void res.end();
    }
  }
  const body = bytes.subarray(start);
  hit.status = start > 0 ? 206 : 200;
  res.writeHead(hit.status, {
    'content-length': String(body.byteLength),
    'accept-ranges': 'bytes',
    etag: `"${file[3]}-v1"`,
    ...(start > 0 && { 'content-range': `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}` }),
  });
  const drop = () => setTimeout(() => res.socket?.destroy(), 30);
  if (behaviour === 'drop-always') {
    res.flushHeaders();
    return void drop();
  }
  if (behaviour === 'drop-once' && !dropped.has(id) && start === 0) {
    dropped.add(id);
    res.write(body.subarray(0, body.byteLength >> 1), drop);
    return;
  }
  if (behaviour === 'slow') {
    const n = 16;
    const step = Math.ceil(body.byteLength / n);
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i >= n) return void res.end();
      res.write(body.subarray(i * step, (i + 1) * step));
      i++;
      setTimeout(next, 15);
    };
    return next();
  }
  res.end(body);
}

/** fetch that serves https://huggingface.co from the local server and refuses every other host. */
const hubFetch: FetchLike = (input, init) => {
  const url = new URL(input);
  if (url.origin === 'https://huggingface.co') return fetch(origin + url.pathname + url.search, init);
  if (url.origin === origin) return fetch(input, init);
  return Promise.reject(new Error(`test fetch: refusing ${input} (only huggingface.co → 127.0.0.1)`));
};

/** Deterministic bytes (an LCG), so a wrong offset shows up as a mismatch. */
function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

async function readAll(src: { size: number; read(o: number, n: number): Promise<Uint8Array> }): Promise<Uint8Array> {
  return new Uint8Array(await src.read(0, src.size));
}

const hitsFor = (suffix: string) => hits.filter((h) => h.path.endsWith(suffix));

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  assert.ok(a && typeof a === 'object');
  origin = `http://127.0.0.1:${a.port}`;

  repos.set('acme/tiny-llama', {
    files: new Map([
      ['README.md', json('readme')],
      ['config.json', json({ model_type: 'llama' })],
      ['tokenizer.json', json({})],
      ['tokenizer_config.json', json({})],
      ['model.safetensors', pattern(1000)],
      ['onnx/model.safetensors', pattern(10)],
    ]),
  });
  repos.set('acme/sharded', {
    files: new Map([
      ['config.json', json({})],
      ['tokenizer.json', json({})],
      ['model.safetensors.index.json', json({ weight_map: { a: 'model-00002-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' } })],
      ['model-00001-of-00002.safetensors', pattern(100)],
      ['model-00002-of-00002.safetensors', pattern(100)],
    ]),
  });
  repos.set('acme/quants-GGUF', {
    files: new Map([
      ['tiny.Q4_K_M.gguf', pattern(10)],
      ['tiny.Q8_0.gguf', pattern(10)],
      ['tiny.f16.gguf', pattern(10)],
      ['README.md', json('')],
    ]),
  });
  repos.set('acme/pickles', { files: new Map([['pytorch_model.bin', pattern(10)], ['config.json', json({})], ['README.md', json('')]]) });
  repos.set('acme/private', { files: new Map(), apiStatus: [401, 'RepoNotFound'] });
  repos.set('meta-llama/Llama-Gated', { files: new Map(), apiStatus: [401, 'GatedRepo'] });
  repos.set('acme/gated-files', { files: new Map([['model.gguf', pattern(64)]]), behaviour: new Map([['model.gguf', 'forbidden']]), gated: 'manual' });

  const big = pattern(300_000, 7);
  repos.set('acme/flaky', {
    files: new Map([
      ['drop-once.bin', big],
      ['ignore-range.bin', big],
      ['slow.bin', big],
      ['drop-always.bin', big],
    ]),
    behaviour: new Map<string, Behaviour>([
      ['drop-once.bin', 'drop-once'],
      ['ignore-range.bin', 'ignore-range'],
      ['slow.bin', 'slow'],
      ['drop-always.bin', 'drop-always'],
    ]),
  });

  // Real checkpoints, served read-only as Hub repos when ../shared/models is here.
  const st = join(MODELS, 'corpus-llama-7m');
  if (existsSync(join(st, 'model.safetensors'))) {
    const names = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'reference.json'];
    repos.set('moefy/corpus-llama-7m', { files: new Map(names.map((n) => [n, new Uint8Array(readFileSync(join(st, n)))])) });
  }
  const gg = join(MODELS, 'stories260K', 'tinyllamas-stories-260k-f32.gguf');
  if (existsSync(gg)) repos.set('moefy/stories260K-GGUF', { files: new Map([['tinyllamas-stories-260k-f32.gguf', new Uint8Array(readFileSync(gg))]]) });
});

after(() => {
  server?.closeAllConnections();
  server?.close();
});

// ---------------------------------------------------------------- resolveHubFiles

describe('resolveHubFiles', () => {
  test('picks config, tokenizer files and model.safetensors at the top of the repo, pinned to the commit', { timeout: 10_000 }, async () => {
    const r = await resolveHubFiles('acme/tiny-llama', { fetch: hubFetch });
    assert.equal(r.format, 'safetensors');
    assert.equal(r.revision, 'main');
    assert.equal(r.commit, COMMIT);
    assert.deepEqual(r.files.map((f) => f.path), ['config.json', 'tokenizer_config.json', 'tokenizer.json', 'model.safetensors']);
    assert.equal(r.files[3].url, `https://huggingface.co/acme/tiny-llama/resolve/${COMMIT}/model.safetensors`);
    assert.equal(r.files[3].size, 1000);
    const api = hitsFor('/revision/main').at(-1);
    assert.equal(api?.path, '/api/models/acme/tiny-llama/revision/main');
  });

  test('a sharded checkpoint: the index and every shard it names', { timeout: 10_000 }, async () => {
    const r = await resolveHubFiles('acme/sharded', { fetch: hubFetch, revision: 'v1.0' });
    assert.equal(r.revision, 'v1.0');
    assert.deepEqual(r.files.map((f) => f.path), [
      'config.json',
      'tokenizer.json',
      'model.safetensors.index.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
  });

  test('GGUF repos: the one file, or the preferred decodable quantisation', { timeout: 10_000 }, async () => {
    const r = await resolveHubFiles('https://huggingface.co/acme/quants-GGUF/tree/main', { fetch: hubFetch });
    assert.equal(r.format, 'gguf');
    assert.deepEqual(r.files.map((f) => f.path), ['tiny.Q8_0.gguf']);
  });

  test('a 404 repo says it was not found', { timeout: 10_000 }, async () => {
    await assert.rejects(resolveHubFiles('acme/does-not-exist', { fetch: hubFetch }), (e: HubError) => {
      assert.equal(e.name, 'HubError');
      assert.equal(e.reason, 'not-found');
      assert.match(e.message, /^acme\/does-not-exist: repo not found .*HTTP 404/);
      return true;
    });
  });

  test('a 401 gated repo says it is gated, and a 401 RepoNotFound that it may be private', { timeout: 10_000 }, async () => {
    await assert.rejects(resolveHubFiles('meta-llama/Llama-Gated', { fetch: hubFetch }), (e: HubError) => {
      assert.equal(e.reason, 'gated');
      assert.equal(e.status, 401);
      assert.match(e.message, /gated repo \(HTTP 401\).*licence/);
      return true;
    });
    await assert.rejects(resolveHubFiles('acme/private', { fetch: hubFetch }), (e: HubError) => {
      assert.equal(e.reason, 'gated');
      assert.match(e.message, /private or gated \(HTTP 401\)/);
      return true;
    });
  });

  test('a repo with no supported checkpoint lists what it found', { timeout: 10_000 }, async () => {
    await assert.rejects(resolveHubFiles('acme/pickles', { fetch: hubFetch }), (e: HubError) => {
      assert.equal(e.reason, 'no-checkpoint');
      assert.match(e.message, /no supported checkpoint files/);
      assert.match(e.message, /PyTorch \.bin pickles are not supported/);
      assert.match(e.message, /found pytorch_model\.bin, config\.json, README\.md$/);
      return true;
    });
  });

  test('repo ids: owner/name, pasted Hub URLs, and junk', () => {
    assert.deepEqual(parseRepoId(' HuggingFaceTB/SmolLM2-135M '), { repo: 'HuggingFaceTB/SmolLM2-135M', revision: undefined });
    assert.deepEqual(parseRepoId('https://huggingface.co/Qwen/Qwen2.5-0.5B/tree/v2'), { repo: 'Qwen/Qwen2.5-0.5B', revision: 'v2' });
    assert.deepEqual(parseRepoId('hf.co/acme/x/blob/main/config.json'), { repo: 'acme/x', revision: 'main' });
    assert.throws(() => parseRepoId('not a repo'), (e: HubError) => e.reason === 'bad-repo-id');
    assert.throws(() => parseRepoId('a/../../b'), HubError);
  });
});

// ---------------------------------------------------------------- download

describe('download', () => {
  const fileUrl = (repo: string, file: string) => `https://huggingface.co/${repo}/resolve/main/${file}`;

  test('a connection dropped half-way is resumed with a Range request; the bytes are identical', { timeout: 20_000 }, async () => {
    const cache = memoryBlobCache();
    const progress: DownloadProgress[] = [];
    const src = await download(fileUrl('acme/flaky', 'drop-once.bin'), { cache, fetch: hubFetch, retryDelayMs: 10, segmentBytes: 32 << 10, onProgress: (p) => progress.push(p) });
    assert.equal(src.name, 'drop-once.bin');
    assert.deepEqual(await readAll(src), repos.get('acme/flaky')!.files.get('drop-once.bin'));

    const h = hitsFor('/drop-once.bin');
    assert.equal(h.length, 2, `two requests: ${JSON.stringify(h)}`);
    assert.equal(h[0].range, undefined);
    assert.equal(h[0].status, 200);
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(h[1].range ?? '')?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= 150_000, `resumed from the bytes already stored: ${h[1].range}`);
    assert.equal(h[1].status, 206);
    // One complete entry, no segments left.
    assert.deepEqual((await cache.list()).map((e) => e.key), [fileUrl('acme/flaky', 'drop-once.bin')]);
    const last = progress.at(-1)!;
    assert.equal(last.loadedBytes, 300_000);
    assert.equal(last.totalBytes, 300_000);
    assert.ok(progress.every((p) => p.bytesPerSecond >= 0 && Number.isFinite(p.bytesPerSecond)));

    // Cached: the second download makes no request.
    const n = hits.length;
    const again = await download(fileUrl('acme/flaky', 'drop-once.bin'), { cache, fetch: hubFetch });
    assert.equal(hits.length, n);
    assert.equal(again.size, 300_000);
  });

  test('cancelling keeps the partial file; the next download resumes it with Range', { timeout: 20_000 }, async () => {
    const cache = memoryBlobCache();
    const url = fileUrl('acme/flaky', 'slow.bin');
    const ctl = new AbortController();
    await assert.rejects(
      download(url, {
        cache,
        fetch: hubFetch,
        signal: ctl.signal,
        progressIntervalMs: 0,
        onProgress: (p) => {
          if (p.loadedBytes >= 100_000) ctl.abort();
        },
      }),
      (e: DownloadAbortedError) => {
        assert.equal(e.name, 'AbortError');
        assert.match(e.message, /^slow\.bin: download cancelled at \d+ of 300000 bytes/);
        return true;
      },
    );
    const kept = await partialBytes(cache, url);
    assert.ok(kept >= 100_000 && kept < 300_000, `partial file kept: ${kept} bytes`);

    const src = await download(url, { cache, fetch: hubFetch });
    assert.deepEqual(await readAll(src), repos.get('acme/flaky')!.files.get('slow.bin'));
    assert.equal(hitsFor('/slow.bin').at(-1)?.range, `bytes=${kept}-`);
    assert.equal(hitsFor('/slow.bin').at(-1)?.status, 206);
  });

  test('a server that ignores Range: the partial file is dropped and the download restarts cleanly', { timeout: 20_000 }, async () => {
    const cache = memoryBlobCache();
    const url = fileUrl('acme/flaky', 'ignore-range.bin');
    const want = repos.get('acme/flaky')!.files.get('ignore-range.bin')!;
    await seedPartial(cache, url, want.subarray(0, 120_000), want.byteLength);

    const src = await download(url, { cache, fetch: hubFetch });
    assert.equal(hitsFor('/ignore-range.bin').at(-1)?.range, 'bytes=120000-');
    assert.equal(hitsFor('/ignore-range.bin').at(-1)?.status, 200);
    assert.deepEqual(await readAll(src), want);
    assert.equal((await cache.list()).length, 1);
  });

  test('a stored part that does not belong to the file (wrong size) is dropped before any request', { timeout: 20_000 }, async () => {
    const cache = memoryBlobCache();
    const okUrl = fileUrl('acme/tiny-llama', 'model.safetensors');
    await seedPartial(cache, okUrl, pattern(10, 99), 999);
    const src = await download(okUrl, { cache, fetch: hubFetch, size: 1000 });
    assert.equal(hitsFor('/tiny-llama/resolve/main/model.safetensors').at(-1)?.range, undefined);
    assert.deepEqual(await readAll(src), pattern(1000));
  });

  test('retries are bounded; the error names the file and how far it got', { timeout: 20_000 }, async () => {
    const cache = memoryBlobCache();
    const url = fileUrl('acme/flaky', 'drop-always.bin');
    const before = hitsFor('/drop-always.bin').length;
    await assert.rejects(download(url, { cache, fetch: hubFetch, maxRetries: 3, retryDelayMs: 5 }), (e: DownloadError) => {
      assert.equal(e.name, 'DownloadError');
      assert.match(e.message, /^drop-always\.bin: download failed 4 times in a row \(last: connection dropped: .*\); stopped at 0 of 300000 bytes/);
      assert.match(e.message, /loading again resumes/);
      return true;
    });
    assert.equal(hitsFor('/drop-always.bin').length - before, 4);
  });

  test('a gated file (403) fails at once, saying why', { timeout: 10_000 }, async () => {
    const r = await resolveHubFiles('acme/gated-files', { fetch: hubFetch });
    assert.equal(r.gated, 'manual');
    const n = hits.length;
    await assert.rejects(download(r.files[0].url, { cache: memoryBlobCache(), fetch: hubFetch, retryDelayMs: 5 }), (e: DownloadError) => {
      assert.equal(e.status, 403);
      assert.match(e.message, /^model\.gguf: access denied \(HTTP 403\): the file is gated or private/);
      return true;
    });
    assert.equal(hits.length - n, 1, 'no retries on 403');
  });
});

// ---------------------------------------------------------------- real checkpoints through the fake Hub

describe('real checkpoints from the fake Hub', () => {
  const skip = existsSync(MODELS) ? false : `test models not found at ${MODELS} (../shared/models from the repo root)`;

  test('corpus-llama-7m (safetensors + tokenizer.json) and stories260K (GGUF) open after download', { skip, timeout: 60_000 }, async () => {
    const cache = memoryBlobCache();
    for (const [repo, dim, vocab] of [['moefy/corpus-llama-7m', 256, 4096], ['moefy/stories260K-GGUF', 64, 512]] as const) {
      const r = await resolveHubFiles(repo, { fetch: hubFetch });
      const sources = [];
      for (const f of r.files) sources.push(await download(f.url, { cache, fetch: hubFetch, key: `hf/${repo}/${r.commit}/${f.path}`, name: `${repo}/${f.path}`, size: f.size }));
      const ckpt = await openCheckpoint(sources);
      assert.equal(ckpt.config.dim, dim, repo);
      assert.equal(ckpt.config.vocabSize, vocab, repo);
      assert.equal(ckpt.tokenizer.decode(ckpt.tokenizer.encode('Once upon a time')), 'Once upon a time');
    }
  });
});

// ---------------------------------------------------------------- helpers

async function partialBytes(cache: BlobCache, key: string): Promise<number> {
  return (await cache.list()).filter((e) => e.key.startsWith(key + '.part-')).reduce((n, e) => n + e.size, 0);
}

/** What an interrupted download leaves: one segment and the part's metadata. */
async function seedPartial(cache: BlobCache, url: string, bytes: Uint8Array, total: number): Promise<void> {
  await cache.put(`${url}.part-000000`, [bytes]);
  await cache.put(`${url}.partmeta`, [json({ url, totalBytes: total, etag: null })]);
}
