// Export the dense LLaMA-family model as ONNX (the users' "Export ONNX" and `moefy export --format onnx`), and run
// an ONNX model with onnxruntime-web: an independent cross-check of the WebGPU engine.
//
// The graph is the forward of llama.ref.ts written in standard ONNX operators (default domain, opset 17), read
// top to bottom like modeling_llama.py. Weights are initializers under their Hugging Face names and in HF
// [out, in] layout; each projection is MatMul(x, Transpose(W)), and onnxruntime folds the transposes at load.
//
//   input_ids  int64   [1, T]          (T dynamic)
//   logits     float32 [1, T, vocab]
//
// RoPE uses one formula for both conventions: rope(x) = x ⊙ cos + (x · R) ⊙ sin, where cos/sin are tables
// [maxSeqLen, headDim] gathered at positions 0..T-1 and R is the ±1 permutation that maps each pair (a, b) to
// (−b, a): pairs (i, i + headDim/2) for 'half' (HF rotate_half), (2i, 2i + 1) for 'interleaved' (llama2.c).

import type { ModelConfig } from './config.ts';
import { DataType, encodeModel, type Node, type Tensor } from './onnx-proto.ts';

export const ONNX_IR_VERSION = 8;
export const ONNX_OPSET = 17;

/** A finite "minus infinity" for the causal mask: exp underflows to exactly 0, and WGSL need not support inf. */
const MASKED = -1e9;

export interface BuildOnnxOptions {
  /** 'dynamic' (default): one model for every T ≤ maxSeqLen. A number fixes T (static shapes suit some backends). */
  seqLen?: 'dynamic' | number;
}

// ----------------------------------------------------------------------------
// The graph under construction: nodes in order, initializers, and one helper per kind of thing added

class GraphBuilder {
  nodes: Node[] = [];
  initializers: Tensor[] = [];
  private names = new Set<string>();

  constructor(private weights: Map<string, Float32Array>) {}

  /** Adds a node; returns its output's name, `${scope}/${opType}` (numbered if taken) unless `output` names it. */
  op(opType: string, inputs: string[], scope: string, attributes?: Record<string, number | number[]>, output?: string): string {
    let name = output ?? `${scope}/${opType}`;
    if (!output) for (let i = 1; this.names.has(name); i++) name = `${scope}/${opType}_${i}`;
    if (this.names.has(name)) throw new Error(`buildOnnx: value ${name} defined twice`);
    this.names.add(name);
    this.nodes.push({ opType, inputs, outputs: [name], name, attributes });
    return name;
  }

  /** A checkpoint weight as an initializer under its HF name (added once), checked against its expected shape. */
  weight(name: string, dims: number[]): string {
    if (this.names.has(name)) return name;
    const data = this.weights.get(name);
    if (!data) throw new Error(`buildOnnx: missing weight ${name}`);
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`buildOnnx: ${name} has ${data.length} elements, expected [${dims.join(', ')}] = ${n}`);
    return this.tensor(name, DataType.FLOAT, dims, data);
  }

  /** A float32 constant computed here (RoPE tables, scalars). */
  float(name: string, dims: number[], values: ArrayLike<number>): string {
    return this.tensor(name, DataType.FLOAT, dims, Float32Array.from(values));
  }

  /** An int64 vector (shapes, axes, positions), by default named by its values so equal constants are shared. */
  ints(values: number[], name = `const.i64[${values.join(',')}]`): string {
    if (this.names.has(name)) return name;
    return this.tensor(name, DataType.INT64, [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  private tensor(name: string, dataType: number, dims: number[], data: Float32Array | BigInt64Array): string {
    if (this.names.has(name)) throw new Error(`buildOnnx: value ${name} defined twice`);
    this.names.add(name);
    const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // raw_data is little-endian
    this.initializers.push({ name, dataType, dims, rawData });
    return name;
  }
}

// ----------------------------------------------------------------------------
// The export

/** Serializes the dense forward of `config` with `weights` (HF names, HF layout) as an ONNX ModelProto. */
export function buildOnnx(config: ModelConfig, weights: Map<string, Float32Array>, opts: BuildOnnxOptions = {}): Uint8Array {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('buildOnnx: needs a little-endian host');
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, headDim, vocabSize, maxSeqLen, normEps } = config;
  const qDim = nHeads * headDim, kvDim = nKvHeads * headDim;
  const T = opts.seqLen === undefined || opts.seqLen === 'dynamic' ? 'T' : opts.seqLen;
  const g = new GraphBuilder(weights);

  // x · Wᵀ (+ b): nn.Linear with the HF [out, in] weight of `module`
  const linear = (x: string, module: string, outDim: number, inDim: number, bias = false): string => {
    const wT = g.op('Transpose', [g.weight(`${module}.weight`, [outDim, inDim])], module, { perm: [1, 0] });
    const y = g.op('MatMul', [x, wT], module);
    return bias ? g.op('Add', [y, g.weight(`${module}.bias`, [outDim])], module) : y;
  };
  // x / sqrt(mean(x²) + eps) · w
  const eps = g.float('const.norm_eps', [], [normEps]);
  const rmsnorm = (x: string, module: string): string => {
    const ms = g.op('ReduceMean', [g.op('Mul', [x, x], module)], module, { axes: [-1], keepdims: 1 });
    const rms = g.op('Sqrt', [g.op('Add', [ms, eps], module)], module);
    return g.op('Mul', [g.op('Div', [x, rms], module), g.weight(`${module}.weight`, [dim])], module);
  };
  // [1, T, n·headDim] → [1, n, T, headDim]
  const splitHeads = (x: string, n: number, scope: string): string =>
    g.op('Transpose', [g.op('Reshape', [x, g.ints([1, -1, n, headDim])], scope)], scope, { perm: [0, 2, 1, 3] });

  // ---- positions 0..T-1, their RoPE cos/sin, and the causal mask: shared by every layer ----
  const seqLen = g.op('Shape', ['input_ids'], 'positions', { start: 1, end: 2 });                 // [1] = (T)
  const arange = g.ints(Array.from({ length: maxSeqLen }, (_, i) => i), 'positions.arange');
  const positions = g.op('Slice', [arange, g.ints([0]), seqLen, g.ints([0])], 'positions');     // [T]
  const [cosTable, sinTable, rotate] = ropeTables(config);
  const cos = g.op('Gather', [g.float('rope.cos', [maxSeqLen, headDim], cosTable), positions], 'rope', { axis: 0 }); // [T, headDim]
  const sin = g.op('Gather', [g.float('rope.sin', [maxSeqLen, headDim], sinTable), positions], 'rope', { axis: 0 }); // [T, headDim]
  const R = g.float('rope.rotate', [headDim, headDim], rotate);
  const rope = (x: string, scope: string): string =>
    g.op('Add', [g.op('Mul', [x, cos], scope), g.op('Mul', [g.op('MatMul', [x, R], scope), sin], scope)], scope);
  // mask[t, j] = 0 where key j ≤ query t, else MASKED
  const keyPos = g.op('Unsqueeze', [positions, g.ints([0])], 'mask');                            // [1, T]
  const queryPos = g.op('Unsqueeze', [positions, g.ints([1])], 'mask');                          // [T, 1]
  const visible = g.op('LessOrEqual', [keyPos, queryPos], 'mask');                               // [T, T] bool
  const mask = g.op('Where', [visible, g.float('const.zero', [], [0]), g.float('const.masked', [], [MASKED])], 'mask'); // [T, T]
  const scale = g.float('const.attn_scale', [], [1 / Math.sqrt(headDim)]);
  const groupSize = nHeads / nKvHeads;

  // ---- embedding: x = embed_tokens[input_ids] ----
  let x = g.op('Gather', [g.weight('model.embed_tokens.weight', [vocabSize, dim]), 'input_ids'], 'model.embed_tokens', { axis: 0 }); // [1, T, dim]

  for (let l = 0; l < nLayers; l++) {
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;

    // ---- attention: x = x + o_proj(softmax(rope(q) · rope(k)ᵀ / √headDim + mask) · v), q, k, v from input_layernorm(x) ----
    const h = rmsnorm(x, `${p}.input_layernorm`);
    const q = rope(splitHeads(linear(h, `${a}.q_proj`, qDim, dim, config.qkvBias), nHeads, `${a}/q`), `${a}/rope_q`);    // [1, nHeads, T, headDim]
    let k = rope(splitHeads(linear(h, `${a}.k_proj`, kvDim, dim, config.qkvBias), nKvHeads, `${a}/k`), `${a}/rope_k`);   // [1, nKvHeads, T, headDim]
    let v = splitHeads(linear(h, `${a}.v_proj`, kvDim, dim, config.qkvBias), nKvHeads, `${a}/v`);                        // [1, nKvHeads, T, headDim]
    if (groupSize > 1) {
      // HF repeat_kv: kv head g serves query heads g·groupSize .. (g+1)·groupSize − 1
      const repeatKv = (t: string, scope: string): string => {
        const grouped = g.op('Reshape', [t, g.ints([nKvHeads, 1, -1, headDim])], scope);                         // [nKvHeads, 1, T, headDim]
        const copies = g.op('Expand', [grouped, g.ints([1, groupSize, 1, 1])], scope);                           // [nKvHeads, groupSize, T, headDim]
        return g.op('Reshape', [copies, g.ints([1, nHeads, -1, headDim])], scope);                              // [1, nHeads, T, headDim]
      };
      k = repeatKv(k, `${a}/repeat_kv_k`);
      v = repeatKv(v, `${a}/repeat_kv_v`);
    }
    const kT = g.op('Transpose', [k], a, { perm: [0, 1, 3, 2] });                                                // [1, nHeads, headDim, T]
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kT], a), scale], a), mask], a);                  // [1, nHeads, T, T]
    const probs = g.op('Softmax', [scores], a, { axis: -1 });
    const heads = g.op('Transpose', [g.op('MatMul', [probs, v], a)], a, { perm: [0, 2, 1, 3] });                 // [1, T, nHeads, headDim]
    const merged = g.op('Reshape', [heads, g.ints([1, -1, qDim])], a);                                           // [1, T, nHeads·headDim]
    x = g.op('Add', [x, linear(merged, `${a}.o_proj`, dim, qDim)], p);

    // ---- MLP: x = x + down_proj(silu(gate_proj(h)) · up_proj(h)), h = post_attention_layernorm(x) ----
    const h2 = rmsnorm(x, `${p}.post_attention_layernorm`);
    const gate = linear(h2, `${p}.mlp.gate_proj`, hiddenDim, dim);                                               // [1, T, hiddenDim]
    const up = linear(h2, `${p}.mlp.up_proj`, hiddenDim, dim);                                                   // [1, T, hiddenDim]
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate], `${p}.mlp`)], `${p}.mlp`), up], `${p}.mlp`);
    x = g.op('Add', [x, linear(act, `${p}.mlp.down_proj`, dim, hiddenDim)], p);
  }

  // ---- final norm and classifier: logits = lm_head(norm(x)), lm_head = embed_tokens when tied ----
  const lmHead = config.tiedEmbeddings ? 'model.embed_tokens' : 'lm_head';
  const headT = g.op('Transpose', [g.weight(`${lmHead}.weight`, [vocabSize, dim])], 'lm_head', { perm: [1, 0] });
  g.op('MatMul', [rmsnorm(x, 'model.norm'), headT], 'lm_head', undefined, 'logits');               // [1, T, vocab]

  return encodeModel({
    irVersion: ONNX_IR_VERSION,
    opsetVersion: ONNX_OPSET,
    producerName: 'moefy',
    producerVersion: '0.1.0',
    docString: `${config.arch}: ${nLayers} layers, dim ${dim}, ${nHeads} heads (${nKvHeads} kv), rope ${config.ropeStyle} θ=${config.ropeTheta}`,
    graph: {
      name: 'moefy_dense',
      nodes: g.nodes,
      initializers: g.initializers,
      inputs: [{ name: 'input_ids', elemType: DataType.INT64, shape: [1, T] }],
      outputs: [{ name: 'logits', elemType: DataType.FLOAT, shape: [1, T, vocabSize] }],
    },
  });
}

/**
 * RoPE as tables: cos/sin [maxSeqLen, headDim] with cos[p, i] = cos(p · θ^(−2·pair(i)/headDim)), and the rotation
 * R [headDim, headDim] with (x · R)[a] = −x[b], (x · R)[b] = x[a] for every pair (a, b); see rope() in llama.ref.ts.
 */
function ropeTables(c: ModelConfig): [Float64Array, Float64Array, Float64Array] {
  const { headDim, maxSeqLen, ropeTheta, ropeStyle } = c;
  const half = headDim / 2;
  const pairs: [number, number][] = Array.from({ length: half }, (_, i) => (ropeStyle === 'half' ? [i, i + half] : [2 * i, 2 * i + 1]));
  const cos = new Float64Array(maxSeqLen * headDim), sin = new Float64Array(maxSeqLen * headDim);
  for (let p = 0; p < maxSeqLen; p++) {
    pairs.forEach(([a, b], i) => {
      const angle = p * Math.pow(ropeTheta, (-2 * i) / headDim);
      cos[p * headDim + a] = cos[p * headDim + b] = Math.cos(angle);
      sin[p * headDim + a] = sin[p * headDim + b] = Math.sin(angle);
    });
  }
  const R = new Float64Array(headDim * headDim); // R[row, col]: input dim row feeds output dim col
  for (const [a, b] of pairs) {
    R[b * headDim + a] = -1;
    R[a * headDim + b] = 1;
  }
  return [cos, sin, R];
}
