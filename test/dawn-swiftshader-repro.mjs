import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const mode = process.argv[2];
const adapter = await create([]).requestAdapter();
const device = await adapter.requestDevice();
const code = `@group(0) @binding(0) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(256) fn main(@builtin(local_invocation_index) l: u32) {
  var s = 0.0; for (var i = 0u; i < 200000u; i++) { s += f32(i % 7u) * 0.5; } C[l] = s; }`;
const pipe = device.createComputePipeline({layout:'auto', compute:{module: device.createShaderModule({code}), entryPoint:'main'}});
const c = device.createBuffer({size:1024, usage: GPUBufferUsage.STORAGE|GPUBufferUsage.COPY_SRC});
const rb = device.createBuffer({size:1024, usage: GPUBufferUsage.MAP_READ|GPUBufferUsage.COPY_DST});
const bg = device.createBindGroup({layout: pipe.getBindGroupLayout(0), entries:[{binding:0,resource:{buffer:c}}]});
const enc = device.createCommandEncoder(); const pass = enc.beginComputePass(); pass.setPipeline(pipe); pass.setBindGroup(0,bg); pass.dispatchWorkgroups(1); pass.end();
enc.copyBufferToBuffer(c,0,rb,0,1024);
device.queue.submit([enc.finish()]);
if (mode === 'done') await device.queue.onSubmittedWorkDone();
if (mode.startsWith('sleep')) await new Promise(r => setTimeout(r, Number(mode.slice(5)||3000)));
const t0=performance.now();
await rb.mapAsync(GPUMapMode.READ); console.error('result', new Float32Array(rb.getMappedRange())[0], performance.now()-t0);
