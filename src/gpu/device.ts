// The WebGPU runtime shared by both hosts: a device with the adapter's limits, a buffer pool, a pipeline
// cache, and a recorder that batches dispatches into one command buffer until flush(). Errors that
// WebGPU reports asynchronously are collected per op and thrown at the next flush, naming the op.
import { DeviceLostError, GpuLimitError, GpuOpError, fmtShape } from './errors.ts';
import { Tensor, numel, type DType, type HostArray } from './tensor.ts';

export interface GpuFeatures {
  /** shader-f16 available (kernels keep an f32 path regardless). */
  f16: boolean;
  subgroups: boolean;
  timestamps: boolean;
}

export interface GpuInfo {
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation (SwiftShader): correct but ~1000× slower; benchmarks say so. */
  software: boolean;
}

export type Workgroups = readonly [number, number?, number?];

/**
 * GEMM kernel families (shaders/matmul.wgsl, shaders/moe_gemm.wgsl): 'tiled' stages tiles through
 * workgroup memory (GPUs); 'direct' has no workgroup memory and no barrier (software adapters, where
 * SwiftShader switches coroutines at every barrier).
 */
export type GemmKernel = 'tiled' | 'direct';

export interface Dispatch {
  /** Name used in every error message. */
  op: string;
  /** Shapes of the op's operands, printed with any error. */
  shapes?: Record<string, readonly number[]>;
  shader: string;
  entry?: string;
  constants?: Record<string, number | boolean>;
  /** Packed uniform block, bound at @binding(0) when present. */
  params?: Uint8Array;
  /**
   * Storage buffers in binding order (from 1 when params are present, else from 0); null skips a binding
   * number the entry point does not use.
   */
  bindings: readonly (Tensor | null)[];
  workgroups: Workgroups;
}

const UNIFORM_CHUNK = 1 << 16;

interface UniformChunk {
  buffer: GPUBuffer;
  staging: Uint8Array;
  used: number;
}

export class Gpu {
  readonly limits: GPUSupportedLimits;
  private readonly modules = new Map<string, { module: GPUShaderModule; id: number }>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly uniforms: UniformChunk[] = [];
  private uniformCursor = 0;
  private pending: Promise<Error | null>[] = [];
  private recordedOps: string[] = [];
  private lost: DeviceLostError | null = null;
  private readonly lostListeners = new Set<(e: DeviceLostError) => void>();
  /** Bytes currently held in live tensors and in the pool. */
  bytesAllocated = 0;
  /** The GEMM kernels ops record: direct on a software adapter, tiled otherwise. Checks run both. */
  gemmKernel: GemmKernel;

  private constructor(
    private readonly api: GPU,
    readonly device: GPUDevice,
    readonly info: GpuInfo,
    readonly features: GpuFeatures,
  ) {
    this.limits = device.limits;
    this.gemmKernel = info.software ? 'direct' : 'tiled';
    device.lost.then((l) => {
      this.lost = new DeviceLostError(l.reason, l.message || 'no message');
      for (const cb of this.lostListeners) cb(this.lost);
    });
  }

  /**
   * Requests an adapter from `api` (navigator.gpu, or Dawn's in Node) and a device with the adapter's full
   * limits and every optional feature the kernels can use.
   */
  static async create(api: GPU, noAdapter: (detail: string) => Error): Promise<Gpu> {
    const adapter = await api.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) throw noAdapter('requestAdapter() returned no adapter');
    const want: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
    const requiredFeatures = want.filter((f) => adapter.features.has(f));
    const raise = [
      'maxStorageBufferBindingSize',
      'maxBufferSize',
      'maxComputeWorkgroupStorageSize',
      'maxComputeInvocationsPerWorkgroup',
      'maxComputeWorkgroupSizeX',
      'maxComputeWorkgroupSizeY',
      'maxComputeWorkgroupsPerDimension',
      'maxStorageBuffersPerShaderStage',
    ] as const;
    const requiredLimits: Record<string, number> = {};
    for (const k of raise) requiredLimits[k] = adapter.limits[k];
    const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'moefy' });
    const ai = adapter.info;
    const text = `${ai?.vendor ?? ''} ${ai?.architecture ?? ''} ${ai?.description ?? ''}`.toLowerCase();
    const info: GpuInfo = {
      vendor: ai?.vendor ?? 'unknown',
      architecture: ai?.architecture ?? '',
      description: ai?.description ?? '',
      software: Boolean((adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|cpu/.test(text),
    };
    const has = (f: GPUFeatureName) => device.features.has(f);
    return new Gpu(api, device, info, { f16: has('shader-f16'), subgroups: has('subgroups'), timestamps: has('timestamp-query') });
  }

  /** One line naming the adapter and its optional features, for reports. */
  describe(): string {
    const i = this.info;
    const f = Object.entries(this.features).filter(([, v]) => v).map(([k]) => k).join(', ');
    return `${i.vendor} ${i.architecture} ${i.description}`.replace(/\s+/g, ' ').trim() + ` [features: ${f || 'none'}]`;
  }

  /** A second, independent device on the same adapter (e.g. to run a device-loss drill safely). */
  fork(): Promise<Gpu> {
    return Gpu.create(this.api, (d) => new Error(`fork: ${d}`));
  }

  /** Called with the loss once the device is lost; returns an unsubscribe function. */
  onDeviceLost(cb: (e: DeviceLostError) => void): () => void {
    this.lostListeners.add(cb);
    if (this.lost) cb(this.lost);
    return () => this.lostListeners.delete(cb);
  }

  // ---------------------------------------------------------------- tensors

  /** An uninitialised tensor from the pool. */
  tensor(shape: readonly number[], dtype: DType = 'f32', label = 'tensor'): Tensor {
    this.throwIfLost();
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`tensor ${label}: bad shape ${fmtShape(shape)}`);
    }
    const bytes = numel(shape) * 4;
    // Rounded to 16 bytes so any tensor can be bound as array<vec4<f32>>.
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    const bucket = bucketSize(size);
    if (bucket > this.limits.maxBufferSize && size <= this.limits.maxBufferSize) {
      return new Tensor(this, this.createBuffer(size, label), shape, dtype, label);
    }
    const free = this.pool.get(bucket);
    const buffer = free?.pop() ?? this.createBuffer(bucket, label);
    return new Tensor(this, buffer, shape, dtype, label);
  }

  upload(data: HostArray, shape: readonly number[], label = 'tensor'): Tensor {
    if (data.length !== numel(shape)) {
      throw new Error(`upload ${label}: ${data.length} values do not fill shape ${fmtShape(shape)}`);
    }
    const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : 'u32';
    const t = this.tensor(shape, dtype, label);
    this.write(t, data);
    return t;
  }

  /**
   * Host → GPU copy. queue.writeBuffer runs ahead of work still being recorded, so that work is
   * submitted first: a buffer released and reused within one batch is never overwritten too early.
   */
  write(t: Tensor, data: HostArray): void {
    if (data.length !== t.size) throw new Error(`write ${t}: got ${data.length} values`);
    this.submit();
    this.device.queue.writeBuffer(t.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Fills with NaN (floats) or 0xFFFFFFFF (ints) so an element an op never writes fails its check. */
  poison(t: Tensor): void {
    const fill = t.dtype === 'f32' ? new Float32Array(t.size).fill(NaN) : new Uint32Array(t.size).fill(0xffffffff);
    this.write(t, fill);
  }

  /** Submits pending work and copies the tensor back. */
  async read(t: Tensor): Promise<HostArray> {
    this.throwIfLost();
    const staging = this.device.createBuffer({ size: Math.max(16, t.byteSize), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.getEncoder().copyBufferToBuffer(t.buffer, 0, staging, 0, Math.max(16, Math.ceil(t.byteSize / 4) * 4));
    await this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.throwIfLost();
      throw e;
    }
    const bytes = staging.getMappedRange().slice(0, t.byteSize);
    staging.unmap();
    staging.destroy();
    return t.dtype === 'f32' ? new Float32Array(bytes) : t.dtype === 'i32' ? new Int32Array(bytes) : new Uint32Array(bytes);
  }

  /** Returns a buffer to the pool (Tensor.release calls this). */
  recycle(buffer: GPUBuffer): void {
    const list = this.pool.get(buffer.size) ?? [];
    list.push(buffer);
    this.pool.set(buffer.size, list);
  }

  /** Frees pooled buffers that no tensor holds. */
  trim(): void {
    for (const list of this.pool.values()) {
      for (const b of list) {
        this.bytesAllocated -= b.size;
        b.destroy();
      }
    }
    this.pool.clear();
  }

  private createBuffer(size: number, label: string): GPUBuffer {
    for (const limit of ['maxBufferSize', 'maxStorageBufferBindingSize'] as const) {
      if (size > this.limits[limit]) throw new GpuLimitError(`tensor ${label}`, limit, size, this.limits[limit]);
    }
    this.device.pushErrorScope('out-of-memory');
    const buffer = this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label });
    this.pending.push(
      this.device.popErrorScope().then((e) => (e ? new GpuOpError(`allocating ${label} (${size} bytes)`, 'out-of-memory', e.message) : null)),
    );
    this.bytesAllocated += size;
    return buffer;
  }

  // ---------------------------------------------------------------- dispatch

  /** Records one compute dispatch; runs at the next flush() or read(). */
  dispatch(call: Dispatch): void {
    this.throwIfLost();
    const [x, y = 1, z = 1] = call.workgroups;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    for (const n of [x, y, z]) {
      if (n > maxWg) throw new GpuLimitError(`${call.op}${describeShapes(call.shapes)}: workgroup grid`, 'maxComputeWorkgroupsPerDimension', n, maxWg);
    }
    if (x === 0 || y === 0 || z === 0) return;
    const device = this.device;
    device.pushErrorScope('validation');
    const pipeline = this.pipeline(call.shader, call.entry ?? 'main', call.constants ?? {});
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (call.params) entries.push({ binding: binding++, resource: this.uniform(call.params) });
    for (const t of call.bindings) {
      if (t) entries.push({ binding, resource: { buffer: t.buffer } });
      binding++;
    }
    const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: call.op });
    const pass = this.getPass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    const where = `${call.op}${describeShapes(call.shapes)}`;
    this.pending.push(device.popErrorScope().then((e) => (e ? new GpuOpError(where, 'validation', e.message) : null)));
    this.recordedOps.push(call.op);
  }

  /** Copies all of src into dst starting at element dstOffset. */
  copy(src: Tensor, dst: Tensor, dstOffset = 0): void {
    if (dstOffset < 0 || !Number.isInteger(dstOffset) || dstOffset + src.size > dst.size) {
      throw new Error(`copy: ${src} does not fit in ${dst} at element ${dstOffset}`);
    }
    if (src.size === 0) return;
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src.buffer, 0, dst.buffer, dstOffset * 4, src.byteSize);
  }

  /** Copies dst.shape[0] rows of src, starting at row `fromRow`, into dst (row-major, same row width). */
  copyRows(src: Tensor, fromRow: number, dst: Tensor): void {
    const width = src.size / src.shape[0];
    if (dst.size / dst.shape[0] !== width || fromRow < 0 || fromRow + dst.shape[0] > src.shape[0]) {
      throw new Error(`copyRows: rows ${fromRow}..${fromRow + dst.shape[0]} of ${src} do not fit ${dst}`);
    }
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src.buffer, fromRow * width * 4, dst.buffer, 0, dst.byteSize);
  }

  /** Submits everything recorded so far and throws the first error any op produced. */
  async flush(): Promise<void> {
    this.throwIfLost();
    this.submit();
    const pending = this.pending;
    this.pending = [];
    const errors = (await Promise.all(pending)).filter((e): e is Error => e !== null);
    this.throwIfLost();
    if (errors.length) throw errors[0];
  }

  /** Submits recorded work without waiting; its errors surface at the next flush(). */
  private submit(): void {
    if (!this.encoder) return;
    this.endPass();
    for (const c of this.uniforms.slice(0, this.uniformCursor + 1)) {
      if (c.used) this.device.queue.writeBuffer(c.buffer, 0, c.staging.buffer, 0, c.used);
      c.used = 0;
    }
    this.uniformCursor = 0;
    const ops = this.recordedOps;
    this.device.pushErrorScope('validation');
    this.device.queue.submit([this.encoder.finish()]);
    this.pending.push(
      this.device.popErrorScope().then((e) => (e ? new GpuOpError(`submit of [${[...new Set(ops)].join(', ')}]`, 'validation', e.message) : null)),
    );
    this.encoder = null;
    this.recordedOps = [];
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    await this.flush();
    await this.device.queue.onSubmittedWorkDone();
  }

  /**
   * Times `reps` repetitions of what `record` dispatches, in one submit: GPU timestamps where the device
   * has them, wall clock around the submit otherwise. Returns milliseconds per repetition.
   */
  async measure(reps: number, record: () => void): Promise<{ msPerRep: number; source: 'timestamp' | 'wall' }> {
    await this.sync();
    let query: GPUQuerySet | null = null;
    if (this.features.timestamps) {
      query = this.device.createQuerySet({ type: 'timestamp', count: 2 });
      this.pass = this.getEncoder().beginComputePass({ timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } });
    }
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) record();
    if (!query) {
      await this.sync();
      return { msPerRep: (performance.now() - t0) / reps, source: 'wall' };
    }
    this.endPass();
    const resolve = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.getEncoder();
    enc.resolveQuerySet(query, 0, 2, resolve, 0);
    enc.copyBufferToBuffer(resolve, 0, staging, 0, 16);
    await this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const [a, b] = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.destroy();
    resolve.destroy();
    query.destroy();
    return { msPerRep: Number(b - a) / 1e6 / reps, source: 'timestamp' };
  }

  destroy(): void {
    this.lostListeners.clear();
    this.device.destroy();
  }

  private pipeline(shader: string, entry: string, constants: Record<string, number | boolean>): GPUComputePipeline {
    const constKey = Object.keys(constants).sort().map((k) => `${k}=${Number(constants[k])}`).join(',');
    let mod = this.modules.get(shader);
    if (!mod) {
      mod = { module: this.device.createShaderModule({ code: shader }), id: this.modules.size };
      this.modules.set(shader, mod);
    }
    const module = mod.module;
    const key = `${mod.id}:${entry}:${constKey}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const numeric: Record<string, number> = {};
      for (const [k, v] of Object.entries(constants)) numeric[k] = Number(v);
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: entry, constants: numeric } });
      this.pipelines.set(key, p);
    }
    return p;
  }

  private uniform(bytes: Uint8Array): GPUBufferBinding {
    const align = this.limits.minUniformBufferOffsetAlignment;
    let chunk = this.uniforms[this.uniformCursor];
    if (chunk && chunk.used + bytes.length > UNIFORM_CHUNK) chunk = this.uniforms[++this.uniformCursor];
    if (!chunk) {
      chunk = {
        buffer: this.device.createBuffer({ size: UNIFORM_CHUNK, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'params' }),
        staging: new Uint8Array(UNIFORM_CHUNK),
        used: 0,
      };
      this.uniforms[this.uniformCursor] = chunk;
    }
    const offset = chunk.used;
    chunk.staging.set(bytes, offset);
    chunk.used = Math.ceil((offset + bytes.length) / align) * align;
    return { buffer: chunk.buffer, offset, size: bytes.length };
  }

  private getEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: 'moefy' });
    return this.encoder;
  }

  private getPass(): GPUComputePassEncoder {
    this.pass ??= this.getEncoder().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private throwIfLost(): void {
    if (this.lost) throw this.lost;
  }
}

/** Pool buckets: powers of two up to 1 MiB, then 1 MiB steps, so reuse is likely and waste bounded. */
function bucketSize(bytes: number): number {
  if (bytes <= 1 << 20) return Math.max(256, 2 ** Math.ceil(Math.log2(bytes)));
  return Math.ceil(bytes / (1 << 20)) * (1 << 20);
}

function describeShapes(shapes?: Record<string, readonly number[]>): string {
  if (!shapes) return '';
  return ` (${Object.entries(shapes).map(([k, s]) => `${k} ${fmtShape(s)}`).join(', ')})`;
}
