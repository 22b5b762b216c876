// What a GPU task may touch outside the GPU: files named on the command line. Two implementations: Node's
// filesystem (Dawn host), and HTTP to the CLI's local server (Chromium host), so tasks are host-agnostic.
import type { ByteSource } from '../model/source.ts';

export interface HostIO {
  /** Each path a file or a directory (its files): the sources of a checkpoint, a text, a data folder. */
  open(paths: readonly string[]): Promise<ByteSource[]>;
  write(path: string, bytes: Uint8Array): Promise<void>;
}

/** HostIO over the Chromium host's server: /ls lists a path's files, /fs serves ranges of one. */
export function httpIO(write: (path: string, base64: string) => Promise<void>): HostIO {
  return {
    async open(paths) {
      const { httpSource } = await import('../model/source-http.ts');
      const out: ByteSource[] = [];
      for (const p of paths) {
        const res = await fetch(`/ls?path=${encodeURIComponent(p)}`);
        if (!res.ok) throw new Error(`${p}: ${await res.text()}`);
        const files = (await res.json()) as { path: string; size: number }[];
        for (const f of files) out.push(await httpSource(`/fs?path=${encodeURIComponent(f.path)}`, f.path, f.size));
      }
      return out;
    },
    async write(path, bytes) {
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      await write(path, btoa(bin));
    },
  };
}
