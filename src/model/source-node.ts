// Node-only byte sources (fs file handles). The only file in src/model that imports node:*, so the rest of
// the engine also runs in a browser Worker.
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { checkRange, type ByteSource } from './source.ts';

/** A file on disk, read by ranges: each read opens, reads and closes, so nothing leaks a descriptor. */
export async function fileSourceNode(path: string): Promise<ByteSource> {
  const { size } = await stat(path);
  const src: ByteSource = {
    name: path,
    size,
    async read(offset, length) {
      checkRange(src, offset, length);
      const out = new Uint8Array(length);
      const fh = await open(path, 'r');
      try {
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(out, done, length - done, offset + done);
          if (bytesRead === 0) throw new Error(`${path}: file shrank while reading (wanted ${length} bytes at ${offset})`);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
      return out;
    },
  };
  return src;
}

/** The regular files directly inside `dir`, sorted by name (what a browser directory picker gives). */
export async function openDirNode(dir: string): Promise<ByteSource[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  return Promise.all(files.map((f) => fileSourceNode(join(dir, f))));
}
