// Browser storage for the LaDiMo pipeline's checkpoints (captured activations, distilled layers), so a
// reload finds them: OPFS (navigator.storage.getDirectory) where the browser has it, IndexedDB where it
// does not, memory as a last resort (then nothing survives a reload). The store is a HostIO
// (src/cli/io.ts) over paths like 'runs/<key>/<file>', so RunCheckpoint uses it as it uses a CLI folder,
// and it also lists and deletes for the Storage panel. A write past the origin's quota fails with a
// StorageQuotaError saying how much was needed and how much is free.
import type { HostIO } from '../cli/io.ts';
import { memoryBlobCache, opfsBlobCache, type BlobCache } from '../model/source-hub.ts';
import { fileSource, type ByteSource } from '../model/source.ts';

export type StorageBackend = 'opfs' | 'indexeddb' | 'memory';

export class StorageQuotaError extends Error {
  constructor(readonly needed: number, readonly free: number | null) {
    super(`storage quota exceeded: ${formatBytes(needed)} needed, ${free === null ? 'an unknown amount' : formatBytes(free)} free; delete stored runs in the Storage panel`);
    this.name = 'StorageQuotaError';
  }
}

export interface StorageEstimate {
  usage: number | null;
  quota: number | null;
}

export interface BrowserStore extends HostIO {
  readonly backend: StorageBackend;
  remove(path: string): Promise<void>;
  /** every stored file and its size in bytes */
  list(): Promise<{ path: string; size: number }[]>;
  estimate(): Promise<StorageEstimate>;
}

/** navigator.storage.estimate(), where the browser has it. */
async function estimateStorage(): Promise<StorageEstimate> {
  const e = await (globalThis.navigator as Navigator | undefined)?.storage?.estimate?.().catch(() => undefined);
  return { usage: e?.usage ?? null, quota: e?.quota ?? null };
}

/** A BrowserStore over a blob cache: one entry per path. */
export function blobStore(cache: BlobCache, backend: StorageBackend, estimate: () => Promise<StorageEstimate> = estimateStorage): BrowserStore {
  return {
    backend,
    estimate,
    /** Each path a file, or a folder: the files under `path/`, sorted. */
    async open(paths) {
      const all = await cache.list();
      const out: ByteSource[] = [];
      for (const p of paths) {
        const mine = all.filter((e) => e.key === p || e.key.startsWith(`${p}/`)).sort((a, b) => (a.key < b.key ? -1 : 1));
        if (!mine.length) throw new Error(`${p}: not in browser storage`);
        for (const e of mine) {
          const blob = await cache.get(e.key);
          if (blob) out.push(fileSource(blob, e.key));
        }
      }
      return out;
    },
    async write(path, bytes) {
      try {
        await cache.put(path, [bytes]);
      } catch (e) {
        if ((e as Error)?.name !== 'QuotaExceededError') throw e;
        const { usage, quota } = await estimate();
        throw new StorageQuotaError(bytes.byteLength, usage !== null && quota !== null ? Math.max(0, quota - usage) : null);
      }
    },
    remove: (path) => cache.delete(path),
    list: async () => (await cache.list()).map((e) => ({ path: e.key, size: e.size })),
  };
}

/** OPFS, else IndexedDB, else memory. */
export async function openBrowserStore(name = 'moefy-runs'): Promise<BrowserStore> {
  for (const [open, backend] of [[() => opfsBlobCache(name), 'opfs'], [() => indexedDbBlobCache(name), 'indexeddb']] as const) {
    try {
      return blobStore(await open(), backend);
    } catch {
      // not available here: try the next
    }
  }
  return blobStore(memoryBlobCache(), 'memory');
}

/** A blob cache in IndexedDB: one object store, values { blob, size } under their keys. */
async function indexedDbBlobCache(name: string): Promise<BlobCache> {
  const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!idb) throw new Error('IndexedDB is not available here');
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const r = idb.open(name, 1);
    r.onupgradeneeded = () => r.result.createObjectStore('files');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  type Entry = { blob: Blob; size: number };
  // one request per transaction; its result once the transaction has committed
  const run = <T>(mode: IDBTransactionMode, request: (s: IDBObjectStore) => IDBRequest<T>) =>
    new Promise<T>((resolve, reject) => {
      const tx = db.transaction('files', mode);
      const req = request(tx.objectStore('files'));
      tx.oncomplete = () => resolve(req.result);
      tx.onabort = tx.onerror = () => reject(tx.error ?? req.error);
    });
  return {
    kind: 'IndexedDB',
    get: async (key) => (await run<Entry | undefined>('readonly', (s) => s.get(key)))?.blob,
    async put(key, data) {
      const blob = data instanceof Blob ? data : new Blob(data as unknown as BlobPart[]);
      await run('readwrite', (s) => s.put({ blob, size: blob.size } satisfies Entry, key));
    },
    has: async (key) => (await run('readonly', (s) => s.count(key))) > 0,
    delete: async (key) => void (await run('readwrite', (s) => s.delete(key))),
    list: () =>
      new Promise((resolve, reject) => {
        const out: { key: string; size: number }[] = [];
        const tx = db.transaction('files', 'readonly');
        const cursor = tx.objectStore('files').openCursor();
        cursor.onsuccess = () => {
          const c = cursor.result;
          if (!c) return;
          out.push({ key: String(c.key), size: (c.value as Entry).size });
          c.continue();
        };
        tx.oncomplete = () => resolve(out);
        tx.onabort = tx.onerror = () => reject(tx.error);
      }),
  };
}

/** 1536 → '1.5 KiB'. */
function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
