// safetensors files, as the format is specified in huggingface/safetensors (README "Format"): an 8-byte
// little-endian u64 N, N bytes of JSON header {name: {dtype, shape, data_offsets: [begin, end]}} (plus an
// optional "__metadata__"), then the data section; offsets are relative to the start of the data section.
// Sharded checkpoints add model.safetensors.index.json: {"weight_map": {tensor name: shard file name}}.
import { baseName, CheckpointError, dirName, findFile, readJson, type ByteSource } from './source.ts';
import { byteLength, fmtShape, numel, type DType, type TensorEntry } from './weights.ts';

const DTYPES: Record<string, DType> = { F32: 'F32', F16: 'F16', BF16: 'BF16' };
/** The spec caps the header at 100 MB; anything larger is a corrupt length. */
const MAX_HEADER = 100_000_000;

/** Every tensor in one .safetensors file, validated against the file's size. Reads only the header. */
export async function parseSafetensors(src: ByteSource): Promise<Map<string, TensorEntry>> {
  const fail = (detail: string): never => {
    throw new CheckpointError(src.name, detail);
  };
  if (src.size < 8) fail(`truncated: ${src.size} bytes, shorter than the 8-byte header length`);
  const n = Number(new DataView((await src.read(0, 8)).slice().buffer).getBigUint64(0, true));
  if (n > MAX_HEADER) fail(`header length ${n} is over the format's 100 MB limit: not a safetensors file?`);
  if (8 + n > src.size) fail(`truncated: the header says it is ${n} bytes, so the file needs at least ${8 + n} bytes, but it has ${src.size}`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(await src.read(8, n)));
  } catch (e) {
    return fail(`header is not valid JSON: ${(e as Error).message}`);
  }
  const dataStart = 8 + n;
  const dataSize = src.size - dataStart;

  const out = new Map<string, TensorEntry>();
  let end = 0;
  let last = '';
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: off } = (info ?? {}) as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dt = DTYPES[String(dtype)];
    if (!dt) fail(`tensor "${name}" has dtype ${String(dtype)}, which MoEfy cannot load (supported: ${Object.keys(DTYPES).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) || off[0] > off[1]) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(off)}`);
    }
    const [b, e] = off as [number, number];
    const want = byteLength(dt, numel(shape as number[]));
    if (e - b !== want) {
      fail(`tensor "${name}": data_offsets [${b}, ${e}] span ${e - b} bytes but ${dt} × ${fmtShape(shape as number[])} needs ${want}`);
    }
    if (e > end) [end, last] = [e, name];
    out.set(name, { fileName: name, source: src, offset: dataStart + b, dtype: dt, shape: shape as number[] });
  }
  if (end > dataSize) {
    fail(
      `truncated or corrupt: tensor "${last}" ends at data offset ${end}, past the end of the data section ` +
        `(${dataSize} bytes); expected a file of at least ${dataStart + end} bytes, got ${src.size}`,
    );
  }
  return out;
}

/**
 * The tensors of a checkpoint in `files`: model.safetensors.index.json with its shards, else a single
 * .safetensors file. Returns them with the file name to use in errors about the set.
 */
export async function openSafetensors(files: readonly ByteSource[]): Promise<{ file: string; tensors: Map<string, TensorEntry> }> {
  const index = findFile(files, 'model.safetensors.index.json');
  if (index) return { file: index.name, tensors: await parseSharded(index, files) };
  const single = findFile(files, 'model.safetensors') ?? files.filter((f) => f.name.endsWith('.safetensors'))[0];
  if (!single) {
    throw new CheckpointError(dirName(files), `no model.safetensors or model.safetensors.index.json (files: ${files.map((f) => baseName(f.name)).join(', ')})`);
  }
  return { file: single.name, tensors: await parseSafetensors(single) };
}

async function parseSharded(index: ByteSource, files: readonly ByteSource[]): Promise<Map<string, TensorEntry>> {
  const json = (await readJson(index)) as { weight_map?: Record<string, string> };
  const map = json.weight_map;
  if (typeof map !== 'object' || map === null) throw new CheckpointError(index.name, 'no "weight_map" object');
  const shards = new Map<string, Map<string, TensorEntry>>();
  for (const shard of new Set(Object.values(map))) {
    const src = findFile(files, shard);
    if (!src) throw new CheckpointError(index.name, `weight_map names shard "${shard}", which is not among the files`);
    shards.set(shard, await parseSafetensors(src));
  }
  const out = new Map<string, TensorEntry>();
  for (const [name, shard] of Object.entries(map)) {
    const e = shards.get(shard)!.get(name);
    if (!e) throw new CheckpointError(findFile(files, shard)!.name, `missing tensor "${name}" (${baseName(index.name)} puts it in this shard)`);
    out.set(name, e);
  }
  return out;
}
