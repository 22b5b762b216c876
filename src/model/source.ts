// Byte sources: random-access reads of a checkpoint file, so parsers read a header, then one tensor at a
// time, and never hold a whole multi-GB file. Works in browsers, Workers and Node (Node's fs lives in
// source-node.ts only).

/** A file read by ranges. `name` is the path or file name used in every error message. */
export interface ByteSource {
  name: string;
  size: number;
  /** `length` bytes from `offset`; rejects a range past the end (callers validate before reading). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** Thrown by every parser: names the file and what is wrong with it. */
export class CheckpointError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'CheckpointError';
  }
}

export function checkRange(src: ByteSource, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new CheckpointError(src.name, `read of ${length} bytes at offset ${offset} runs past the end of the file (${src.size} bytes)`);
  }
}

/** In-memory bytes (tests, fetched files). `read` returns views, not copies. */
export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  const src: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(src, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
  return src;
}

/** A browser File or Blob (file picker, drag and drop, OPFS); `Blob.slice` reads only the range asked for. */
export function fileSource(file: Blob, name = (file as File).webkitRelativePath || (file as File).name || 'blob'): ByteSource {
  const src: ByteSource = {
    name,
    size: file.size,
    async read(offset, length) {
      checkRange(src, offset, length);
      return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
    },
  };
  return src;
}

/** The last path component: 'dir/config.json' → 'config.json' (either slash). */
export function baseName(name: string): string {
  return name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
}

/** The folder the files came from ('dir/' of 'dir/config.json'), for errors about a set of files. */
export function dirName(files: readonly ByteSource[]): string {
  const first = files[0]?.name ?? '';
  return first.slice(0, first.length - baseName(first).length) || '(the files given)';
}

/** The file in `files` whose base name is `base`, if any. */
export function findFile(files: readonly ByteSource[], base: string): ByteSource | undefined {
  return files.find((f) => baseName(f.name) === base);
}

export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder().decode(await src.read(0, src.size));
}

export async function readJson(src: ByteSource): Promise<unknown> {
  const text = await readText(src);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(src.name, `not valid JSON: ${(e as Error).message}`);
  }
}
