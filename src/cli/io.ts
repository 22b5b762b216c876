// What a GPU task may touch outside the GPU: files named on the command line. Two implementations: Node's
// filesystem (Dawn host), and HTTP to the CLI's local server (Chromium host), so tasks are host-agnostic.
// Both also open the data sets built in by name (`builtin:brown`), each host in its own way.
import type { ByteSource } from '../model/source.ts';
import { httpSource } from '../model/source-http.ts';
import { BROWN_BUILTIN, fetchBrownSources } from '../data/brown.ts';

export interface HostIO {
  /** Each path a file or a directory (its files): the sources of a checkpoint, a text, a data folder. */
  open(paths: readonly string[]): Promise<ByteSource[]>;
  write(path: string, bytes: Uint8Array): Promise<void>;
  /** Deletes a file this host wrote (checkpoints drop superseded slots); a missing file is no error. */
  remove?(path: string): Promise<void>;
}

/** Data sets a host provides by name, not path: each opens to a data folder's files. */
export type Builtins = Record<string, () => Promise<ByteSource[]>>;

const BUILTIN_PREFIX = 'builtin:';

/** `io` that also opens `builtins` by name; any other `builtin:` name is an error listing the known ones. */
export function withBuiltins(io: HostIO, builtins: Builtins): HostIO {
  return {
    ...io,
    async open(paths) {
      const out: ByteSource[] = [];
      for (const p of paths) {
        if (Object.hasOwn(builtins, p)) out.push(...(await builtins[p]()));
        else if (p.startsWith(BUILTIN_PREFIX)) throw new Error(`${p}: no such built-in data set (built in: ${Object.keys(builtins).join(', ')})`);
        else out.push(...(await io.open([p])));
      }
      return out;
    },
  };
}

/**
 * HostIO over the Chromium host's server: /ls lists a path's files, /fs serves ranges of one, and the
 * built-in corpus is under /corpus/brown/. `site` is the server's root URL (the page's own by default).
 */
export function httpIO(write: (path: string, base64: string) => Promise<void>, remove: (path: string) => Promise<void>, site = '/'): HostIO {
  return withBuiltins({
    async open(paths) {
      const out: ByteSource[] = [];
      for (const p of paths) {
        const res = await fetch(`${site}ls?path=${encodeURIComponent(p)}`);
        if (!res.ok) throw new Error(`${p}: ${await res.text()}`);
        const files = (await res.json()) as { path: string; size: number }[];
        for (const f of files) out.push(await httpSource(`${site}fs?path=${encodeURIComponent(f.path)}`, f.path, f.size));
      }
      return out;
    },
    async write(path, bytes) {
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      await write(path, btoa(bin));
    },
    remove,
  }, { [BROWN_BUILTIN]: () => fetchBrownSources(site) });
}
