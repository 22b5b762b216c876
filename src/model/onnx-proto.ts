// A hand-written protobuf encoder for the few ONNX messages an export needs, so exporting pulls in no
// protobuf library. Field numbers are those of onnx/onnx.proto (github.com/onnx/onnx/blob/main/onnx/onnx.proto),
// cited beside each write. onnx.proto is proto2, so repeated scalars are written unpacked, one tag per element.
//
// Wire format (protobuf.dev/programming-guides/encoding): every field is a tag, (field << 3) | wire type, then
// its value: wire type 0 = varint (ints, enums), 2 = length-delimited (strings, bytes, sub-messages).
// Fields are written in field-number order, so the same model always encodes to the same bytes.

/** TensorProto.DataType (onnx.proto), the element types this export uses. */
export const DataType = { FLOAT: 1, INT64: 7, BOOL: 9 } as const;

/** A tensor with its data as little-endian bytes (TensorProto.raw_data). */
export interface Tensor {
  name: string;
  dataType: number;
  dims: number[];
  rawData: Uint8Array;
}

/** One operator call. Attributes are ints or lists of ints: all this export needs. */
export interface Node {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attributes?: Record<string, number | number[]>;
}

/** A graph input or output: a tensor type and a shape whose entries are sizes or symbolic names ('T'). */
export interface ValueInfo {
  name: string;
  elemType: number;
  shape: (number | string)[];
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Tensor[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface Model {
  irVersion: number;
  opsetVersion: number; // of the default domain ai.onnx
  producerName: string;
  producerVersion: string;
  docString: string;
  graph: Graph;
}

// ----------------------------------------------------------------------------
// The writer: a list of byte chunks, so large tensors are copied once, in finish()

const VARINT = 0, LEN = 2;

class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private pending: number[] = []; // small bytes not yet moved into a chunk
  length = 0;

  /** An int64/int32/enum field (wire type 0). Negative values take 10 bytes (two's complement), as in protobuf. */
  int(field: number, n: number): this {
    this.tag(field, VARINT);
    this.varint(n);
    return this;
  }

  /** A bytes field (wire type 2). The bytes are referenced, not copied, until finish(). */
  bytes(field: number, b: Uint8Array): this {
    this.tag(field, LEN);
    this.varint(b.length);
    this.flush();
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** An embedded message field (wire type 2). */
  message(field: number, m: ProtoWriter): this {
    this.tag(field, LEN);
    this.varint(m.length);
    this.flush();
    m.flush();
    for (const c of m.chunks) this.chunks.push(c);
    this.length += m.length;
    return this;
  }

  finish(): Uint8Array {
    this.flush();
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) { out.set(c, at); at += c.length; }
    return out;
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  private varint(n: number): void {
    if (!Number.isSafeInteger(n)) throw new Error(`protobuf: ${n} is not an integer`);
    let v = BigInt.asUintN(64, BigInt(n));
    do {
      const low = Number(v & 0x7fn);
      v >>= 7n;
      this.pending.push(v ? low | 0x80 : low);
      this.length++;
    } while (v);
  }

  private flush(): void {
    if (this.pending.length) { this.chunks.push(Uint8Array.from(this.pending)); this.pending = []; }
  }
}

// ----------------------------------------------------------------------------
// The messages (field numbers from onnx.proto)

// AttributeProto.AttributeType
const ATTR_INT = 2, ATTR_INTS = 7;

function attribute(name: string, value: number | number[]): ProtoWriter {
  const w = new ProtoWriter().string(1, name);                     // AttributeProto.name = 1
  if (typeof value === 'number') w.int(3, value);                  // AttributeProto.i = 3
  else for (const i of value) w.int(8, i);                         // AttributeProto.ints = 8
  return w.int(20, typeof value === 'number' ? ATTR_INT : ATTR_INTS); // AttributeProto.type = 20
}

function node(n: Node): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);                        // NodeProto.input = 1
  for (const o of n.outputs) w.string(2, o);                       // NodeProto.output = 2
  w.string(3, n.name);                                             // NodeProto.name = 3
  w.string(4, n.opType);                                           // NodeProto.op_type = 4
  for (const [name, value] of Object.entries(n.attributes ?? {})) {
    w.message(5, attribute(name, value));                          // NodeProto.attribute = 5
  }
  return w;                                                        // (domain = 7 left out: the default, ai.onnx)
}

function tensor(t: Tensor): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int(1, d);                             // TensorProto.dims = 1
  w.int(2, t.dataType);                                            // TensorProto.data_type = 2
  w.string(8, t.name);                                             // TensorProto.name = 8
  return w.bytes(9, t.rawData);                                    // TensorProto.raw_data = 9
}

function valueInfo(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);                      // TensorShapeProto.Dimension.dim_value = 1
    else dim.string(2, d);                                         // TensorShapeProto.Dimension.dim_param = 2
    shape.message(1, dim);                                         // TensorShapeProto.dim = 1
  }
  const tensorType = new ProtoWriter()
    .int(1, v.elemType)                                            // TypeProto.Tensor.elem_type = 1
    .message(2, shape);                                            // TypeProto.Tensor.shape = 2
  const type = new ProtoWriter().message(1, tensorType);           // TypeProto.tensor_type = 1
  return new ProtoWriter()
    .string(1, v.name)                                             // ValueInfoProto.name = 1
    .message(2, type);                                             // ValueInfoProto.type = 2
}

function graph(g: Graph): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, node(n));                  // GraphProto.node = 1
  w.string(2, g.name);                                             // GraphProto.name = 2
  for (const t of g.initializers) w.message(5, tensor(t));         // GraphProto.initializer = 5
  for (const v of g.inputs) w.message(11, valueInfo(v));           // GraphProto.input = 11
  for (const v of g.outputs) w.message(12, valueInfo(v));          // GraphProto.output = 12
  return w;
}

/** Serializes a ModelProto. */
export function encodeModel(m: Model): Uint8Array {
  const opset = new ProtoWriter().int(2, m.opsetVersion);          // OperatorSetIdProto.version = 2 (domain = 1 left out: ai.onnx)
  return new ProtoWriter()
    .int(1, m.irVersion)                                           // ModelProto.ir_version = 1
    .string(2, m.producerName)                                     // ModelProto.producer_name = 2
    .string(3, m.producerVersion)                                  // ModelProto.producer_version = 3
    .string(6, m.docString)                                        // ModelProto.doc_string = 6
    .message(7, graph(m.graph))                                    // ModelProto.graph = 7
    .message(8, opset)                                             // ModelProto.opset_import = 8
    .finish();
}
