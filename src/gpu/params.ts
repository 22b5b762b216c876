// Uniform parameter blocks. Each op declares its WGSL `Params` struct once as a table of 4-byte scalar
// fields in the same order; pack() writes it. Scalars only, so the WGSL layout is just sequential.

export type ScalarType = 'u32' | 'i32' | 'f32';

export interface ParamStruct<K extends string> {
  readonly fields: readonly (readonly [K, ScalarType])[];
  readonly byteSize: number;
  pack(values: Record<K, number>): Uint8Array;
}

export function paramStruct<K extends string>(fields: readonly (readonly [K, ScalarType])[]): ParamStruct<K> {
  const byteSize = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  return {
    fields,
    byteSize,
    pack(values) {
      const bytes = new Uint8Array(byteSize);
      const view = new DataView(bytes.buffer);
      fields.forEach(([name, type], i) => {
        const v = values[name];
        if (v === undefined) throw new Error(`params: missing field ${name}`);
        if (type === 'f32') view.setFloat32(i * 4, v, true);
        else if (type === 'i32') view.setInt32(i * 4, v, true);
        else view.setUint32(i * 4, v, true);
      });
      return bytes;
    },
  };
}
