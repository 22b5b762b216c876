// Runs an exported graph (onnx.ts) with onnxruntime-web: the independent cross-check of the WebGPU engine.
// Its own module, so code that only exports ONNX never bundles the runtime and its 28 MB of wasm.

export interface RunOnnxOptions {
  /** Default ['wasm']. In a browser with WebGPU, ['webgpu', 'wasm'] runs on the GPU with the CPU as fallback. */
  executionProviders?: ('webgpu' | 'wasm')[];
}

/** Runs `model` (input_ids → logits, as buildOnnx makes) on one sequence; returns the logits [T, vocab] flattened. */
export async function runOnnx(model: Uint8Array, ids: number[], opts: RunOnnxOptions = {}): Promise<Float32Array> {
  // In Node, onnxruntime-web resolves to its
  // ort.node build, which loads its wasm from node_modules/onnxruntime-web/dist (no network); one thread
  // keeps it off worker_threads.
  const ort = await import('onnxruntime-web');
  if (typeof process !== 'undefined' && process.versions?.node) ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(model, {
    executionProviders: opts.executionProviders ?? ['wasm'],
    logSeverityLevel: 3, // errors only
  });
  try {
    const inputIds = new ort.Tensor('int64', BigInt64Array.from(ids, (id) => BigInt(id)), [1, ids.length]);
    const { logits } = await session.run({ input_ids: inputIds });
    return logits.data as Float32Array;
  } finally {
    await session.release();
  }
}
