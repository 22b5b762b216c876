// "Export ONNX": any supported checkpoint → an ONNX graph of its dense forward (onnx.ts builds it).
import { buildOnnx } from './onnx.ts';
import { openCheckpoint } from './load.ts';
import type { ByteSource } from './source.ts';
import type { Checkpoint } from './weights.ts';

/** Every weight as f32 under its HF name (what the ONNX builder and the float64 reference take). */
export async function readAllWeights(ckpt: Checkpoint): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const name of ckpt.weights.names()) m.set(name, await ckpt.weights.read(name));
  return m;
}

export async function exportOnnx(files: readonly ByteSource[]): Promise<Uint8Array> {
  const ckpt = await openCheckpoint(files);
  return buildOnnx(ckpt.config, await readAllWeights(ckpt));
}
