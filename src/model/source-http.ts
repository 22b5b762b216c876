// A file behind a URL, read by HTTP range requests, so a checkpoint on a server is parsed header first and
// then tensor by tensor, like a local file. (The CLI's Chromium host serves local files this way too.)
import { CheckpointError, checkRange, type ByteSource } from './source.ts';

export async function httpSource(url: string, name = url, size?: number): Promise<ByteSource> {
  if (size === undefined) {
    const head = await fetch(url, { method: 'HEAD' });
    if (!head.ok) throw new CheckpointError(name, `HTTP ${head.status} ${head.statusText} for ${url}`);
    size = Number(head.headers.get('content-length'));
    if (!Number.isFinite(size)) throw new CheckpointError(name, `the server sent no Content-Length for ${url}`);
  }
  const src: ByteSource = {
    name,
    size,
    async read(offset, length) {
      checkRange(src, offset, length);
      if (length === 0) return new Uint8Array(0);
      const res = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` } });
      const whole = res.status === 200 && offset === 0 && length === src.size;
      if (res.status !== 206 && !whole) throw new CheckpointError(name, `range request for ${length} bytes at ${offset} got HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      if (bytes.byteLength !== length) throw new CheckpointError(name, `range request for ${length} bytes at ${offset} returned ${bytes.byteLength}`);
      return bytes;
    },
  };
  return src;
}
