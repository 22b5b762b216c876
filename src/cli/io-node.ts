// HostIO on Node's filesystem (the Dawn host, and tasks that need no GPU).
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileSourceNode, openDirNode } from '../model/source-node.ts';
import type { ByteSource } from '../model/source.ts';
import type { HostIO } from './io.ts';

export const nodeIO: HostIO = {
  async open(paths) {
    const out: ByteSource[] = [];
    for (const p of paths) {
      const s = await stat(p).catch(() => null);
      if (!s) throw new Error(`${p}: no such file or directory`);
      out.push(...(s.isDirectory() ? await openDirNode(p) : [await fileSourceNode(p)]));
    }
    return out;
  },
  async write(path, bytes) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, bytes);
  },
  async remove(path) {
    await rm(path, { force: true });
  },
};

/** Lists a path for the Chromium host's /ls: the files of a directory, or the file itself. */
export async function listFiles(path: string): Promise<{ path: string; size: number }[]> {
  return Promise.all((await nodeIO.open([path])).map(async (f) => ({ path: f.name, size: f.size })));
}
