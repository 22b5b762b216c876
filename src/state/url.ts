// The run spec in the URL, so a run is shared by its link (never its results: those go in run files,
// run-file.ts). Like TensorFlow Playground's state.ts, one generic codec driven by the FIELDS table.
//
//   ?s=<version>.<codec>.<base64url payload>      e.g. ?s=2.j.eyJzZWVkIjo3fQ  (seed 7, the rest default)
//
// version: SPEC_VERSION of the build that wrote it; an older one reads with its defaults, a newer one is
//   refused with a clear message.
// payload: a flat JSON object of only the fields that differ from their defaults, in FIELDS order, so the
//   same spec always gives the same string. Because defaults are left out, a build that changes one bumps
//   SPEC_VERSION and keeps the old value in spec.ts's EARLIER_DEFAULTS, so old links keep their meaning.
// codec: 'j' plain UTF-8 JSON, or 'z' the same deflate-raw compressed, whichever is shorter.
// Decoding validates through parseSpec, so its rules hold here too: an unknown field is an error (naming
// the field), as in a spec file. decode never throws; a bad link is a message for the page, which then
// keeps the spec it had.
import { FIELDS, SPEC_VERSION, SpecError, defaultSpec, defaultsOf, parseSpec, type RunSpec } from './spec.ts';

/** The query parameter that holds the spec. */
export const SPEC_PARAM = 's';

export type DecodeResult = { ok: true; spec: RunSpec; warnings: string[] } | { ok: false; error: string };

/** Where errors say the spec came from. */
const WHERE = 'URL';

/** A decompressed payload larger than this is refused (a real spec is under 4 KB). */
const MAX_JSON_BYTES = 1 << 20;

/** The spec as the value of the `s` parameter. */
export async function encode(spec: RunSpec): Promise<string> {
  const defaults = defaultSpec();
  const diff = Object.fromEntries(FIELDS.filter((f) => spec[f.key] !== defaults[f.key]).map((f) => [f.key, spec[f.key]]));
  const json = new TextEncoder().encode(JSON.stringify(diff));
  const deflated = await transform(json, new CompressionStream('deflate-raw'));
  return deflated.byteLength < json.byteLength ? `${SPEC_VERSION}.z.${toBase64Url(deflated)}` : `${SPEC_VERSION}.j.${toBase64Url(json)}`;
}

/** The spec in an `s` parameter's value, or why there is none. */
export async function decode(text: string): Promise<DecodeResult> {
  const fail = (detail: string): DecodeResult => ({ ok: false, error: `${WHERE}: ${detail}` });
  const m = /^(\d{1,9})\.([a-z])\.([^]*)$/.exec(text.trim());
  if (!m) return fail(`the run spec must look like '${SPEC_VERSION}.j.…' or '${SPEC_VERSION}.z.…' (version, codec, data), got ${preview(text)}`);
  const version = Number(m[1]);
  if (version > SPEC_VERSION) return fail(`the run spec was made by a newer MoEfy, version ${version}; this build reads ≤ ${SPEC_VERSION}`);
  if (version < 1) return fail(`version ${version} is not a run-spec version this build reads (it reads 1 to ${SPEC_VERSION})`);
  if (m[2] !== 'j' && m[2] !== 'z') return fail(`unknown codec '${m[2]}' (this build writes 'j' for JSON and 'z' for deflate-raw)`);
  const bytes = fromBase64Url(m[3]);
  if (!bytes) return fail(`the data is not base64url (letters, digits, '-' and '_'): ${preview(m[3])}`);
  let json = bytes;
  if (m[2] === 'z') {
    try {
      json = await transform(bytes, new DecompressionStream('deflate-raw'), MAX_JSON_BYTES);
    } catch (e) {
      return fail(`the compressed data is damaged (${(e as Error).message})`);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    return fail(`the data is not JSON text (${(e as Error).message})`);
  }
  let spec: RunSpec;
  try {
    // an older link means its own version's defaults (parseSpec restores them)
    spec = parseSpec(typeof value === 'object' && value !== null && !Array.isArray(value) ? { ...value, version } : value, WHERE);
  } catch (e) {
    if (e instanceof SpecError) return { ok: false, error: e.message };
    throw e;
  }
  // The encoder never writes a default; one here came from an edited link or a build with other defaults.
  const defaults = defaultsOf(version);
  const given = value as Record<string, unknown>;
  const warnings = FIELDS.filter((f) => f.key in given && spec[f.key] === defaults[f.key]).map((f) => `${WHERE}: ${f.key} is given at its default value, ${JSON.stringify(defaults[f.key])}`);
  return { ok: true, spec, warnings };
}

/**
 * The spec a page address carries in `?s=`: null when it has none (the page keeps its own spec), else
 * decode's result. `location` is a full URL or its search part ('?s=…').
 */
export async function specFromLocation(location: string): Promise<DecodeResult | null> {
  let params: URLSearchParams;
  try {
    params = new URL(location, 'http://localhost/').searchParams;
  } catch {
    return { ok: false, error: `${WHERE}: not a URL: ${preview(location)}` };
  }
  const values = params.getAll(SPEC_PARAM);
  if (!values.length) return null;
  const result = await decode(values[0]);
  if (result.ok && values.length > 1) result.warnings.push(`${WHERE}: ${values.length} '${SPEC_PARAM}' parameters; the first one is used`);
  return result;
}

/** `baseUrl` (path, query, hash kept) carrying `spec`; without the parameter when the spec is all defaults. */
export async function urlWithSpec(baseUrl: string, spec: RunSpec): Promise<string> {
  const url = new URL(baseUrl);
  const defaults = defaultSpec();
  if (FIELDS.every((f) => spec[f.key] === defaults[f.key])) url.searchParams.delete(SPEC_PARAM);
  else url.searchParams.set(SPEC_PARAM, await encode(spec));
  return url.toString();
}

// ----------------------------------------------------------------------------- bytes

/** Runs bytes through a (de)compression stream; past `limit` output bytes it stops and rejects. */
async function transform(bytes: Uint8Array, stream: CompressionStream | DecompressionStream, limit = Infinity): Promise<Uint8Array> {
  const reader = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`more than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function toBase64Url(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** null when `text` is not unpadded base64url (a length of 4n+1 cannot come from any bytes). */
function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}
