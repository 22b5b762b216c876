// Reductions and tensor statistics over flat f32 tensors.
// main:     segmented reduction. Workgroup g (of p.groups) reduces X[g·seg .. min((g+1)·seg, len)) to
//           Y[g] = scale·Σ, or the max when MAX. Per row of X [rows, n]: seg = n, Y [rows]. Whole tensor:
//           seg = a fixed chunk, run again on the partials until one value is left (src/ops/reduce.ts).
// sqdiff:   the same sum over (A − B)², A and B [len]: the first pass of MSE; later passes are `main`.
// mse_grad: Out [len] = (A − B)·scale, scale = 2·upstream/len.
// histogram: C [bins] += count of X values per bin over [lo, hi) (below lo → bin 0, ≥ hi → last bin);
//           nanCount [1] += NaNs, so every value is counted somewhere.
// count_nonfinite: C [1] += number of NaN and ±Inf in X.
// bincount: C [bins] += how many of Ids equal each bin; ids ≥ bins are skipped (a dynamic-k token's
//           unused slots hold E), so expert loads add up on the GPU over a whole pass.
// clear:    Z [len] = 0. Counters are zeroed by a dispatch, so it stays in order with the work around it.
// Elementwise entries take one element per thread, workgroups linearised over a 2-D grid (num_workgroups).
// NaN/Inf are found from the bits: WGSL lets compilers assume floats are finite, so x != x may fold away.
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  len: u32,
  seg: u32, groups: u32,   // main, sqdiff
  scale: f32,              // main, sqdiff (sum only), mse_grad
  bins: u32,               // histogram, bincount
  lo: f32, hi: f32,
  invWidth: f32,           // bins / (hi − lo)
}

override WG: u32 = 256;      // threads per workgroup, a power of two
override MAX: bool = false;  // main: max instead of sum

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;                    // all but clear: [len] (A)
@group(0) @binding(1) var<storage, read_write> Z: array<u32>;              // clear: [len]
@group(0) @binding(1) var<storage, read> Ids: array<u32>;                  // bincount: [len]
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;              // main: [groups]
@group(0) @binding(2) var<storage, read> B: array<f32>;                    // sqdiff, mse_grad: [len]
@group(0) @binding(2) var<storage, read_write> C: array<atomic<u32>>;      // histogram, bincount: [bins]; count_nonfinite: [1]
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;            // sqdiff: [groups]; mse_grad: [len]
@group(0) @binding(3) var<storage, read_write> nanCount: array<atomic<u32>>;  // histogram: [1]

var<workgroup> red: array<f32, WG>;

// Sum (or max when MAX) of v over the workgroup, valid in thread 0.
fn workgroupReduce(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let o = red[lid + s];
      red[lid] = select(red[lid] + o, max(red[lid], o), MAX);
    }
    workgroupBarrier();
  }
  return red[0];
}

fn linear(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let g = linear(wg, nwg);
  if (g >= p.groups) { return; }
  let start = g * p.seg;
  let end = min(start + p.seg, p.len);
  var acc = select(0.0, X[start], MAX);   // the segment's first element seeds a max without a −∞ literal
  for (var i = start + lid; i < end; i += WG) {
    acc = select(acc + X[i], max(acc, X[i]), MAX);
  }
  let r = workgroupReduce(acc, lid);
  if (lid == 0u) { Y[g] = select(r * p.scale, r, MAX); }
}

@compute @workgroup_size(WG)
fn sqdiff(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
  let g = linear(wg, nwg);
  if (g >= p.groups) { return; }
  let start = g * p.seg;
  let end = min(start + p.seg, p.len);
  var acc = 0.0;
  for (var i = start + lid; i < end; i += WG) {
    let d = X[i] - B[i];
    acc += d * d;
  }
  let r = workgroupReduce(acc, lid);
  if (lid == 0u) { Out[g] = r * p.scale; }
}

@compute @workgroup_size(WG)
fn mse_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg) * WG + lid;
  if (i < p.len) { Out[i] = (X[i] - B[i]) * p.scale; }
}

fn isNan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isNonFinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }

@compute @workgroup_size(WG)
fn histogram(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg) * WG + lid;
  if (i >= p.len) { return; }
  let x = X[i];
  if (isNan(x)) {
    atomicAdd(&nanCount[0], 1u);
    return;
  }
  var b = 0u;
  if (x >= p.hi) {
    b = p.bins - 1u;
  } else if (x > p.lo) {
    b = min(u32((x - p.lo) * p.invWidth), p.bins - 1u);   // min: rounding can reach `bins` just below hi
  }
  atomicAdd(&C[b], 1u);
}

@compute @workgroup_size(WG)
fn count_nonfinite(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg) * WG + lid;
  if (i < p.len && isNonFinite(X[i])) { atomicAdd(&C[0], 1u); }
}

@compute @workgroup_size(WG)
fn bincount(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg) * WG + lid;
  if (i >= p.len) { return; }
  let e = Ids[i];
  if (e < p.bins) { atomicAdd(&C[e], 1u); }
}

@compute @workgroup_size(WG)
fn clear(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
  let i = linear(wg, nwg) * WG + lid;
  if (i < p.len) { Z[i] = 0u; }
}
