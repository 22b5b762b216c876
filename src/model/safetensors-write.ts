// Writing safetensors files (the reading side is safetensors.ts), laid out as the reference implementation
// (huggingface/safetensors, Rust `serialize`) lays them out, so a file written here is byte-identical to
// `safetensors.torch.save_file` of the same f32 tensors and metadata:
//   - tensors sorted by dtype (all F32 here), then by name; data_offsets follow that order, no gaps;
//   - header JSON {"__metadata__": {str: str}, name: {dtype, shape, data_offsets}, …} in that order,
//     compact, padded with spaces to a multiple of 8 bytes so the data section starts 8-byte aligned;
//   - an 8-byte little-endian u64 header length first.
// Data are stored little-endian, as every host this engine runs on is (weights.ts' decode assumes it too).
import { fmtShape, numel } from './weights.ts';

/** One tensor to write: HF name, shape, row-major f32 values. */
export type SafetensorsTensor = readonly [name: string, shape: readonly number[], data: Float32Array];

/**
 * One .safetensors file of F32 tensors. `metadata` goes under "__metadata__" (string values only, as the
 * format requires); transformers refuses a checkpoint whose metadata lacks {"format": "pt"}.
 */
export function writeSafetensors(tensors: readonly SafetensorsTensor[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const sorted = [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = Object.create(null); // tensor names are keys: no inherited ones
  const metaKeys = Object.keys(metadata ?? {}).sort();
  if (metaKeys.length > 0) header.__metadata__ = Object.fromEntries(metaKeys.map((k) => [k, String(metadata![k])]));
  let offset = 0;
  for (const [name, shape, data] of sorted) {
    if (name === '__metadata__' || Object.hasOwn(header, name)) throw new Error(`writeSafetensors: tensor name "${name}" is ${name === '__metadata__' ? 'reserved' : 'given twice'}`);
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`writeSafetensors: tensor "${name}" has an invalid shape ${fmtShape(shape)}`);
    if (data.length !== numel(shape)) throw new Error(`writeSafetensors: tensor "${name}" has ${data.length} values but shape ${fmtShape(shape)} needs ${numel(shape)}`);
    header[name] = { dtype: 'F32', shape: [...shape], data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + n + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n); // ' '
  let at = 8 + n;
  for (const [, , data] of sorted) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}
