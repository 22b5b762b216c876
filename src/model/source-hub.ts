// Checkpoints from the network, for users' browsers: a Hugging Face repo's file list (resolveHubFiles) and
// resumable, cached downloads (download). Engine code: no DOM, runs in a Worker, a page or Node; `fetch` is
// injectable so tests never touch the network.
//
//   repo id ──resolveHubFiles──▶ [config.json, model.safetensors, tokenizer.json, …] URLs
//   URL ──download──▶ BlobCache (OPFS, Cache API or memory) ──▶ ByteSource (fileSource of the cached Blob)
//
// A download is stored as it streams, in segments (`<key>.part-NNNNNN`), so a dropped connection, a
// cancel or a closed tab keeps what arrived; the next download of the same key asks for the rest with a
// Range request and, once complete, joins the segments into one entry under `key`.
import { baseName, fileSource, type ByteSource } from './source.ts';

// ================================================================ blob caches

/** Where downloads are kept between sessions. Keys are free-form strings ('hf/<repo>/<commit>/<file>'). */
export interface BlobCache {
  /** A short description for messages: 'OPFS', 'Cache API', 'memory'. */
  readonly kind: string;
  get(key: string): Promise<Blob | undefined>;
  /** Stores (replacing) `key`; chunks are concatenated. */
  put(key: string, data: Blob | readonly Uint8Array[]): Promise<void>;
  has(key: string): Promise<boolean>;
  /** Removes `key` if present. */
  delete(key: string): Promise<void>;
  /** Every entry, in no particular order. */
  list(): Promise<{ key: string; size: number }[]>;
}

function toBlob(data: Blob | readonly Uint8Array[]): Blob {
  return data instanceof Blob ? data : new Blob(data as unknown as BlobPart[]);
}

/** In memory (Node, tests, and browsers where neither OPFS nor the Cache API is available). */
export function memoryBlobCache(): BlobCache {
  const m = new Map<string, Blob>();
  return {
    kind: 'memory',
    async get(key) {
      return m.get(key);
    },
    async put(key, data) {
      m.set(key, toBlob(data));
    },
    async has(key) {
      return m.has(key);
    },
    async delete(key) {
      m.delete(key);
    },
    async list() {
      return [...m].map(([key, b]) => ({ key, size: b.size }));
    },
  };
}

/**
 * Key → a file name OPFS and the Cache API accept: percent-encoded (no '/'), and long keys shortened to a
 * prefix plus a hash of the whole key. `keyOf` inverts it for names that were not shortened.
 */
function nameOf(key: string): string {
  const enc = encodeURIComponent(key);
  if (enc.length <= 200) return enc;
  let h = 0x811c9dc5; // FNV-1a 32
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  // keep the end: it holds the segment suffix and the file name
  return `~${h.toString(16).padStart(8, '0')}~${enc.slice(-180)}`;
}

function keyOf(name: string): string {
  if (name.startsWith('~')) return name; // shortened; listed under its file name
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

// Minimal typings for the OPFS calls used here (lib.dom has no async iteration of a directory).
interface OpfsDir {
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<OpfsFile>;
  removeEntry(name: string): Promise<void>;
  values(): AsyncIterable<{ kind: string; name: string }>;
}
interface OpfsFile {
  getFile(): Promise<File>;
  createWritable?: () => Promise<{ write(data: Blob | BufferSource): Promise<void>; close(): Promise<void> }>;
  createSyncAccessHandle?: () => Promise<{ write(b: BufferSource, o?: { at: number }): number; truncate(n: number): void; flush(): void; close(): void }>;
}

/**
 * The Origin Private File System (navigator.storage.getDirectory): real files, large quota, and `get`
 * returns a disk-backed File, so a multi-GB checkpoint is never held in memory.
 */
export async function opfsBlobCache(dirName = 'moefy-downloads'): Promise<BlobCache> {
  const storage = (globalThis.navigator as Navigator | undefined)?.storage;
  if (!storage?.getDirectory) throw new Error('OPFS is not available here (navigator.storage.getDirectory is undefined)');
  const root = await storage.getDirectory();
  const dir = (await root.getDirectoryHandle(dirName, { create: true })) as unknown as OpfsDir;
  const handle = async (key: string, create = false): Promise<OpfsFile | undefined> => {
    try {
      return await dir.getFileHandle(nameOf(key), { create });
    } catch (e) {
      if (!create && (e as Error)?.name === 'NotFoundError') return undefined;
      throw e;
    }
  };
  return {
    kind: 'OPFS',
    async get(key) {
      return (await (await handle(key))?.getFile()) ?? undefined;
    },
    async put(key, data) {
      const blob = toBlob(data);
      const h = (await handle(key, true))!;
      if (h.createWritable) {
        // Written to a swap file and swapped in on close(): readers never see half a segment.
        const w = await h.createWritable();
        await w.write(blob);
        await w.close();
      } else if (h.createSyncAccessHandle) {
        // Safari: only sync access handles, only in workers; written in 8 MiB slices.
        const a = await h.createSyncAccessHandle();
        try {
          a.truncate(0);
          for (let at = 0; at < blob.size; at += 8 << 20) {
            a.write(new Uint8Array(await blob.slice(at, at + (8 << 20)).arrayBuffer()), { at });
          }
          a.flush();
        } finally {
          a.close();
        }
      } else {
        throw new Error('OPFS here cannot write files (no createWritable or createSyncAccessHandle)');
      }
    },
    async has(key) {
      return (await handle(key)) !== undefined;
    },
    async delete(key) {
      await dir.removeEntry(nameOf(key)).catch((e: Error) => {
        if (e?.name !== 'NotFoundError') throw e;
      });
    },
    async list() {
      const out: { key: string; size: number }[] = [];
      for await (const e of dir.values()) {
        if (e.kind !== 'file') continue;
        const f = await (await dir.getFileHandle(e.name)).getFile();
        out.push({ key: keyOf(e.name), size: f.size });
      }
      return out;
    },
  };
}

/** The Cache API (caches.open): for browsers without a usable OPFS. Entries are stored as Responses. */
export async function cacheApiBlobCache(name = 'moefy-downloads'): Promise<BlobCache> {
  const storage = (globalThis as { caches?: CacheStorage }).caches;
  if (!storage) throw new Error('the Cache API is not available here (caches is undefined)');
  const cache = await storage.open(name);
  // Cache API keys must be http(s) URLs; this origin is never fetched.
  const PREFIX = 'https://moefy.invalid/';
  const req = (key: string) => new Request(PREFIX + nameOf(key));
  return {
    kind: 'Cache API',
    async get(key) {
      const res = await cache.match(req(key));
      return res ? res.blob() : undefined;
    },
    async put(key, data) {
      const blob = toBlob(data);
      await cache.put(req(key), new Response(blob, { headers: { 'content-length': String(blob.size), 'x-moefy-size': String(blob.size) } }));
    },
    async has(key) {
      return (await cache.match(req(key))) !== undefined;
    },
    async delete(key) {
      await cache.delete(req(key));
    },
    async list() {
      const out: { key: string; size: number }[] = [];
      for (const r of await cache.keys()) {
        const res = await cache.match(r);
        const size = Number(res?.headers.get('x-moefy-size') ?? NaN);
        out.push({ key: keyOf(r.url.slice(PREFIX.length)), size: Number.isFinite(size) ? size : ((await res?.blob())?.size ?? 0) });
      }
      return out;
    },
  };
}

/** OPFS when this host has a working one, else the Cache API, else memory (nothing survives a reload). */
export async function defaultBlobCache(): Promise<BlobCache> {
  try {
    return await opfsBlobCache();
  } catch {
    try {
      return await cacheApiBlobCache();
    } catch {
      return memoryBlobCache();
    }
  }
}

// ================================================================ Hugging Face Hub

export const HF_ENDPOINT = 'https://huggingface.co';

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export type HubErrorReason = 'bad-repo-id' | 'not-found' | 'gated' | 'no-checkpoint' | 'http';

/** The Hub said no, or the repo holds nothing MoEfy can load; `reason` lets callers suggest a way forward. */
export class HubError extends Error {
  constructor(readonly repo: string, readonly reason: HubErrorReason, detail: string, readonly status?: number) {
    super(`${repo}: ${detail}`);
    this.name = 'HubError';
  }
}

export interface HubFile {
  /** Path in the repo ('model-00001-of-00002.safetensors'). */
  path: string;
  url: string;
  /** Bytes, when the listing gave it. */
  size?: number;
}

export interface HubCheckpoint {
  repo: string;
  /** The revision asked for ('main', a tag, a branch or a commit). */
  revision: string;
  /** The commit the revision resolved to; the file URLs use it, so cached files never go stale. */
  commit?: string;
  format: 'safetensors' | 'gguf';
  /** What the checkpoint needs, config first. */
  files: HubFile[];
  /** The repo is gated ('auto' | 'manual'): downloads may be refused without an accepted licence. */
  gated?: string;
}

/**
 * 'owner/name', also pasted as 'https://huggingface.co/owner/name[/tree/rev…]' (the revision in the URL
 * is returned too). Throws HubError('bad-repo-id') on anything else.
 */
export function parseRepoId(input: string): { repo: string; revision?: string } {
  let s = input.trim();
  const url = /^(?:https?:\/\/)?(?:www\.)?(?:huggingface\.co|hf\.co)\/(.*)$/i.exec(s);
  let revision: string | undefined;
  if (url) {
    const parts = url[1].split(/[?#]/)[0].split('/').filter(Boolean);
    if (parts[0] === 'models') parts.shift();
    if ((parts[2] === 'tree' || parts[2] === 'blob' || parts[2] === 'resolve') && parts[3]) revision = decodeURIComponent(parts[3]);
    s = parts.slice(0, 2).join('/');
  }
  if (!/^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/.test(s) || s.includes('..')) {
    throw new HubError(input.trim() || '(empty)', 'bad-repo-id', 'not a Hugging Face repo id: expected "owner/name", e.g. HuggingFaceTB/SmolLM2-135M');
  }
  return { repo: s, revision };
}

export function hubFileUrl(repo: string, revision: string, path: string, endpoint = HF_ENDPOINT): string {
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** GGUF files we can decode, most preferred first (the smallest download that loads). */
const GGUF_PREFERENCE = ['q8_0', 'f16', 'bf16', 'f32'];

/**
 * Lists a Hub repo (GET /api/models/{repo}/revision/{rev}) and picks the files a checkpoint needs:
 * config.json + tokenizer.json (+ tokenizer_config.json) + model.safetensors, or the shards named by
 * model.safetensors.index.json; failing that, one .gguf. Only files at the top of the repo count.
 */
export async function resolveHubFiles(
  repoId: string,
  opts: { revision?: string; fetch?: FetchLike; endpoint?: string; signal?: AbortSignal } = {},
): Promise<HubCheckpoint> {
  const parsed = parseRepoId(repoId);
  const repo = parsed.repo;
  const revision = opts.revision || parsed.revision || 'main';
  const endpoint = (opts.endpoint ?? HF_ENDPOINT).replace(/\/+$/, '');
  const fetchImpl = opts.fetch ?? ((u: string, i?: RequestInit) => fetch(u, i));
  const apiUrl = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;

  let res: Response;
  try {
    res = await fetchImpl(apiUrl, { signal: opts.signal, headers: { accept: 'application/json' } });
  } catch (e) {
    if (opts.signal?.aborted) throw e;
    throw new HubError(repo, 'http', `could not reach ${endpoint} (${(e as Error)?.message ?? e}); check the network connection`);
  }
  if (!res.ok) throw hubHttpError(repo, revision, res, 'list the repo');
  const info = (await res.json().catch(() => null)) as { sha?: unknown; siblings?: unknown; gated?: unknown } | null;
  if (!info || !Array.isArray(info.siblings)) throw new HubError(repo, 'http', `the Hub's answer for ${apiUrl} has no file list (siblings)`);
  const commit = typeof info.sha === 'string' && /^[0-9a-f]{40}$/.test(info.sha) ? info.sha : undefined;
  const gated = typeof info.gated === 'string' && info.gated ? info.gated : undefined;
  const pinned = commit ?? revision;
  const sizes = new Map<string, number | undefined>();
  for (const s of info.siblings as { rfilename?: unknown; size?: unknown; lfs?: { size?: unknown } }[]) {
    if (typeof s?.rfilename !== 'string') continue;
    const size = typeof s.lfs?.size === 'number' ? s.lfs.size : typeof s.size === 'number' ? s.size : undefined;
    sizes.set(s.rfilename, size);
  }
  const top = [...sizes.keys()].filter((p) => !p.includes('/'));
  const file = (path: string): HubFile => ({ path, url: hubFileUrl(repo, pinned, path, endpoint), size: sizes.get(path) });
  const found = () => (top.length ? listNames(top) : 'no files');

  // ---- safetensors: config.json + tokenizer.json + weights
  let weights: string[] | undefined;
  if (sizes.has('model.safetensors.index.json')) {
    const indexFile = file('model.safetensors.index.json');
    const r = await fetchImpl(indexFile.url, { signal: opts.signal });
    if (!r.ok) throw hubHttpError(repo, revision, r, 'read model.safetensors.index.json');
    const index = (await r.json().catch(() => null)) as { weight_map?: Record<string, unknown> } | null;
    const shards = [...new Set(Object.values(index?.weight_map ?? {}).map(String))].sort();
    if (!shards.length) throw new HubError(repo, 'no-checkpoint', 'model.safetensors.index.json has no weight_map');
    const missing = shards.filter((s) => !sizes.has(s));
    if (missing.length) throw new HubError(repo, 'no-checkpoint', `model.safetensors.index.json names shards the repo does not have: ${listNames(missing)}`);
    weights = ['model.safetensors.index.json', ...shards];
  } else if (sizes.has('model.safetensors')) {
    weights = ['model.safetensors'];
  }
  if (weights) {
    const need = ['config.json', 'tokenizer.json'].filter((f) => !sizes.has(f));
    if (need.length) {
      const hint = need.includes('tokenizer.json') && sizes.has('tokenizer.model') ? ' (it has only a SentencePiece tokenizer.model, which MoEfy does not read)' : '';
      throw new HubError(repo, 'no-checkpoint', `has ${weights.at(-1)} but no ${need.join(' or ')}${hint}; found ${found()}`);
    }
    const extra = sizes.has('tokenizer_config.json') ? ['tokenizer_config.json'] : [];
    return { repo, revision, commit, format: 'safetensors', files: ['config.json', ...extra, 'tokenizer.json', ...weights].map(file), gated };
  }

  // ---- GGUF: one file, or the most preferred of several we can decode
  const ggufs = top.filter((p) => p.toLowerCase().endsWith('.gguf'));
  if (ggufs.length === 1) return { repo, revision, commit, format: 'gguf', files: [file(ggufs[0])], gated };
  if (ggufs.length > 1) {
    for (const q of GGUF_PREFERENCE) {
      const pick = ggufs.find((p) => new RegExp(`[-_.]${q}[-_.]`, 'i').test(p.replace(/\.gguf$/i, '.')));
      if (pick) return { repo, revision, commit, format: 'gguf', files: [file(pick)], gated };
    }
    throw new HubError(
      repo,
      'no-checkpoint',
      `none of its ${ggufs.length} GGUF files is in a type MoEfy decodes (${GGUF_PREFERENCE.map((q) => q.toUpperCase()).join(', ')}): ${listNames(ggufs)}`,
    );
  }
  const pickle = top.some((p) => /^pytorch_model.*\.bin$/.test(p)) ? ' (PyTorch .bin pickles are not supported)' : '';
  throw new HubError(
    repo,
    'no-checkpoint',
    `no supported checkpoint files: expected config.json + model.safetensors (or model.safetensors.index.json and its shards) + tokenizer.json, or a .gguf${pickle}; found ${found()}`,
  );
}

function listNames(names: readonly string[], max = 16): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

/** The Hub's refusals, by status and its X-Error-Code header (RepoNotFound, GatedRepo, RevisionNotFound, …). */
function hubHttpError(repo: string, revision: string, res: Response, what: string): HubError {
  const code = res.headers.get('x-error-code') ?? '';
  const s = res.status;
  if (code === 'RevisionNotFound') return new HubError(repo, 'not-found', `revision "${revision}" not found (HTTP ${s})`, s);
  if (code === 'GatedRepo') {
    return new HubError(repo, 'gated', `is a gated repo (HTTP ${s}): its files are only served to signed-in users who accepted its licence on huggingface.co`, s);
  }
  if (s === 404 || code === 'RepoNotFound' || code === 'EntryNotFound') {
    if (s === 401 || s === 403) {
      return new HubError(repo, 'gated', `not found, or private or gated (HTTP ${s}): the Hub shows it only to signed-in users who may see it`, s);
    }
    return new HubError(repo, 'not-found', `repo not found on the Hugging Face Hub (HTTP ${s}); check the id, e.g. HuggingFaceTB/SmolLM2-135M`, s);
  }
  if (s === 401 || s === 403) {
    return new HubError(repo, 'gated', `access denied (HTTP ${s}): the repo is gated or private, and MoEfy downloads without signing in`, s);
  }
  return new HubError(repo, 'http', `could not ${what}: HTTP ${s} ${res.statusText}`.trim(), s);
}

// ================================================================ resumable download

export interface DownloadProgress {
  /** The file's name (as the ByteSource will be named). */
  file: string;
  /** Bytes stored so far, including what an earlier, interrupted download left. */
  loadedBytes: number;
  /** null until the server says (Content-Length / Content-Range) unless the caller passed `size`. */
  totalBytes: number | null;
  /** Over the last few seconds of this download. */
  bytesPerSecond: number;
  etaSeconds: number | null;
}

export interface DownloadOptions {
  cache: BlobCache;
  /** Cache key; the URL by default. */
  key?: string;
  /** The ByteSource's name (named in parser errors); the URL's file name by default. */
  name?: string;
  /** Expected size when known (a Hub listing); a cached entry of another size is downloaded again. */
  size?: number;
  onProgress?: (p: DownloadProgress) => void;
  /** Aborting keeps the partial file; the next download of the same key resumes it. */
  signal?: AbortSignal;
  fetch?: FetchLike;
  /** Consecutive failed attempts (dropped connection, 5xx) before giving up. */
  maxRetries?: number;
  /** First backoff; doubled after each failed attempt, at most 30 s. */
  retryDelayMs?: number;
  /** Bytes buffered in memory before they are stored as a segment. */
  segmentBytes?: number;
  /** Least time between progress callbacks (the last one always comes). */
  progressIntervalMs?: number;
}

/** A download that gave up (after its retries, or on an HTTP error); says how far it got. */
export class DownloadError extends Error {
  constructor(readonly file: string, readonly url: string, readonly loadedBytes: number, readonly totalBytes: number | null, detail: string, readonly status?: number) {
    super(`${file}: ${detail}`);
    this.name = 'DownloadError';
  }
}

/** Cancelled through the AbortSignal: the partial file is kept. `name` is 'AbortError', like fetch's. */
export class DownloadAbortedError extends Error {
  constructor(readonly file: string, readonly loadedBytes: number, readonly totalBytes: number | null) {
    super(`${file}: download cancelled at ${fmtProgress(loadedBytes, totalBytes)}; the part already downloaded is kept and the next load resumes from there`);
    this.name = 'AbortError';
  }
}

interface PartMeta {
  url: string;
  totalBytes: number | null;
  etag: string | null;
}

const PART = '.part-';
const META = '.partmeta';

/** The file name at the end of a URL's path ('model.safetensors'), or 'download'. */
export function urlFileName(url: string): string {
  try {
    const name = baseName(decodeURIComponent(new URL(url).pathname));
    return name || 'download';
  } catch {
    return baseName(url.split(/[?#]/)[0]) || 'download';
  }
}

/**
 * Streams `url` into `opts.cache` and returns the cached file as a ByteSource. A complete cached copy is
 * returned without a request; a partial one is continued with `Range: bytes=<stored>-` (a 206 whose
 * Content-Range starts there is appended; a 200 means the server ignored the range, so the partial file
 * is dropped and the download starts over). A dropped connection or a 5xx is retried with exponential
 * backoff, at most `maxRetries` times in a row without new bytes; then DownloadError names the file and
 * how far it got. Aborting throws DownloadAbortedError and keeps what arrived.
 */
export async function download(url: string, opts: DownloadOptions): Promise<ByteSource> {
  const { cache } = opts;
  const key = opts.key ?? url;
  const name = opts.name ?? urlFileName(url);
  const fetchImpl = opts.fetch ?? ((u: string, i?: RequestInit) => fetch(u, i));
  const maxRetries = opts.maxRetries ?? 5;
  const retryDelayMs = opts.retryDelayMs ?? 500;
  const segmentBytes = opts.segmentBytes ?? 8 << 20;
  const interval = opts.progressIntervalMs ?? 100;
  const signal = opts.signal;

  // ---- a complete copy
  const done = await cache.get(key);
  if (done && (opts.size === undefined || done.size === opts.size)) {
    opts.onProgress?.({ file: name, loadedBytes: done.size, totalBytes: done.size, bytesPerSecond: 0, etaSeconds: 0 });
    return fileSource(done, name);
  }
  if (done) await cache.delete(key);

  // ---- what an earlier attempt left: segments in order, and the size and ETag they belong to
  const parts: Blob[] = [];
  let have = 0; // bytes in `parts`
  let meta: PartMeta | null = null;
  {
    const keys = (await cache.list()).map((e) => e.key).filter((k) => k.startsWith(key + PART)).sort();
    for (const k of keys) {
      const b = await cache.get(k);
      if (b) parts.push(b);
    }
    const m = await cache.get(key + META);
    if (m) meta = (JSON.parse(await m.text()) as PartMeta) ?? null;
    const stale = meta && (meta.url !== url || (opts.size !== undefined && meta.totalBytes !== null && meta.totalBytes !== opts.size));
    if (stale || (parts.length && !meta)) {
      await dropPartial();
      meta = null;
    }
  }
  have = parts.reduce((n, b) => n + b.size, 0);
  let total: number | null = meta?.totalBytes ?? opts.size ?? null;

  async function dropPartial(): Promise<void> {
    const keys = (await cache.list()).map((e) => e.key).filter((k) => k.startsWith(key + PART) || k === key + META);
    for (const k of keys) await cache.delete(k);
    parts.length = 0;
    have = 0;
  }

  let buffered: Uint8Array[] = [];
  let bufferedBytes = 0;
  async function flush(): Promise<void> {
    if (!bufferedBytes) return;
    const blob = new Blob(buffered as unknown as BlobPart[]);
    buffered = [];
    bufferedBytes = 0;
    await cache.put(`${key}${PART}${String(parts.length).padStart(6, '0')}`, blob);
    parts.push(blob);
    have += blob.size;
  }

  // ---- progress: rate over a sliding window of a few seconds
  const samples: [number, number][] = [];
  let lastReport = -Infinity;
  const report = (force = false) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!force && now - lastReport < interval) return;
    lastReport = now;
    const loaded = have + bufferedBytes;
    samples.push([now, loaded]);
    while (samples.length > 2 && now - samples[0][0] > 3000) samples.shift();
    const [t0, b0] = samples[0];
    const rate = now > t0 ? ((loaded - b0) / (now - t0)) * 1000 : 0;
    const eta = total !== null && rate > 0 ? Math.max(0, (total - loaded) / rate) : total !== null && loaded >= total ? 0 : null;
    opts.onProgress({ file: name, loadedBytes: loaded, totalBytes: total, bytesPerSecond: rate, etaSeconds: eta });
  };

  const aborted = () => new DownloadAbortedError(name, have + bufferedBytes, total);
  const gaveUp = (detail: string, status?: number) =>
    new DownloadError(name, url, have, total, `${detail}; stopped at ${fmtProgress(have, total)} — the part already downloaded is kept, so loading again resumes from there`, status);

  let failures = 0;
  let lastError = '';
  let rangeRefused = false;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw aborted();
    if (attempt >= 1000) throw gaveUp(`gave up after ${attempt} requests (last: ${lastError || 'none failed'})`);
    if (failures > 0) {
      if (failures > maxRetries) throw gaveUp(`download failed ${failures} times in a row (last: ${lastError})`);
      await sleep(Math.min(retryDelayMs * 2 ** (failures - 1), 30_000), signal).catch(() => {
        throw aborted();
      });
    }
    if (total !== null && have === total) break; // an earlier attempt stored it all
    if (total !== null && have > total) await dropPartial();

    // ---- request: the rest of the file
    const headers: Record<string, string> = {};
    if (have > 0) headers.range = `bytes=${have}-`;
    let res: Response;
    try {
      res = await fetchImpl(url, { headers, signal });
    } catch (e) {
      if (signal?.aborted) throw aborted();
      failures++;
      lastError = `${(e as Error)?.message ?? e}`;
      continue;
    }

    if (res.status === 416 && have > 0 && !rangeRefused) {
      // Range not satisfiable: the stored part does not fit this file. Start over, once.
      rangeRefused = true;
      await res.body?.cancel().catch(() => {});
      await dropPartial();
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      const s = res.status;
      if (s >= 500 || s === 408 || s === 429) {
        failures++;
        lastError = `HTTP ${s}`;
        continue;
      }
      const why =
        s === 401 || s === 403
          ? `access denied (HTTP ${s}): the file is gated or private, and MoEfy downloads without signing in`
          : s === 404
            ? `not found (HTTP 404) at ${url}`
            : `HTTP ${s} ${res.statusText}`.trim();
      throw new DownloadError(name, url, have, total, why, s);
    }

    // ---- where this response starts
    const etag = res.headers.get('etag');
    if (have > 0 && res.status === 206) {
      const cr = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get('content-range') ?? '');
      const start = cr ? Number(cr[1]) : have;
      const size = cr && cr[3] !== '*' ? Number(cr[3]) : null;
      const changed = (meta?.etag && etag && meta.etag !== etag) || (size !== null && total !== null && size !== total);
      if (start !== have || changed) {
        // Not the continuation of what is stored: drop it and ask for the whole file.
        await res.body?.cancel().catch(() => {});
        await dropPartial();
        total = opts.size ?? null;
        continue;
      }
      if (size !== null) total = size;
    } else {
      // 200: the whole file. If a partial was stored, the server ignored the Range header: start over.
      if (have > 0) await dropPartial();
      const len = Number(res.headers.get('content-length'));
      if (res.headers.has('content-length') && Number.isFinite(len) && !res.headers.get('content-encoding')) total = len;
    }
    meta = { url, totalBytes: total, etag };
    await cache.put(key + META, [new TextEncoder().encode(JSON.stringify(meta))]);

    // ---- stream the body into segments
    const before = have;
    try {
      if (!res.body) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        buffered.push(bytes);
        bufferedBytes += bytes.byteLength;
      } else {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffered.push(value);
          bufferedBytes += value.byteLength;
          if (bufferedBytes >= segmentBytes) await flush();
          report();
        }
      }
      await flush();
    } catch (e) {
      await flush().catch(() => {});
      if (signal?.aborted) throw aborted();
      if (have > before) failures = 0;
      failures++;
      lastError = `connection dropped: ${(e as Error)?.message ?? e}`;
      report(true);
      continue;
    }
    report(true);
    if (total !== null && have < total) {
      // The body ended early without an error (a proxy closing cleanly): continue from here.
      if (have > before) failures = 0;
      failures++;
      lastError = `the response ended at ${have} of ${total} bytes`;
      continue;
    }
    if (total !== null && have > total) {
      failures++;
      lastError = `received ${have} bytes, more than the ${total} announced`;
      await dropPartial();
      continue;
    }
    if (total === null) total = have;
    break;
  }

  // ---- complete: one entry under `key`, the segments removed
  if (opts.size !== undefined && have !== opts.size) {
    const got = have;
    await dropPartial();
    throw new DownloadError(name, url, got, opts.size, `the server sent ${got} bytes but the listing says the file has ${opts.size}`);
  }
  await cache.put(key, new Blob(parts));
  const keys = (await cache.list()).map((e) => e.key).filter((k) => k.startsWith(key + PART) || k === key + META);
  for (const k of keys) await cache.delete(k);
  const blob = (await cache.get(key)) ?? new Blob(parts);
  opts.onProgress?.({ file: name, loadedBytes: blob.size, totalBytes: blob.size, bytesPerSecond: 0, etaSeconds: 0 });
  return fileSource(blob, name);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function fmtProgress(loaded: number, total: number | null): string {
  const mib = (n: number) => (n / 2 ** 20).toFixed(1) + ' MiB';
  if (total === null || total === 0) return `${loaded} bytes (${mib(loaded)})`;
  return `${loaded} of ${total} bytes (${mib(loaded)} of ${mib(total)}, ${((100 * loaded) / total).toFixed(0)}%)`;
}
