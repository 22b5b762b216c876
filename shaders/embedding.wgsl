// Embedding lookup (LLaMA's embed_tokens) and its gradient.
// main:     out[t, :] = table[ids[t], :].   table: [vocab, dim]; ids: [T] u32; out: [T, dim].
// backward: dTable[v, :] (+)= Σ_{t: ids[t] = v} dOut[t, :], summed in increasing t.
// The host cannot see ids that live on the GPU, so an id ≥ vocab writes a row of NaN, which every
// later op carries to the loss and logits where it is caught; the backward gives such an id to no row.
// main copies rows as u32 bits: a gather needs no arithmetic and the NaN is then an exact bit pattern.
// One thread per output element over a 2-D grid of 64-thread workgroups, linearised with num_workgroups.
// Each entry point binds its own buffers; variables sharing a binding number belong to different entries.

struct Params {
  T: u32,
  dim: u32,
  vocab: u32,
}

// backward: add into dTable instead of overwriting it (gradient accumulation).
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;       // main: [vocab, dim] f32 bits
@group(0) @binding(1) var<storage, read> dOut: array<f32>;        // backward: [T, dim]
@group(0) @binding(2) var<storage, read> ids: array<u32>;         // [T]
@group(0) @binding(3) var<storage, read_write> out: array<u32>;   // main: [T, dim] f32 bits
@group(0) @binding(3) var<storage, read_write> dTable: array<f32>;   // backward: [vocab, dim]

const NAN_BITS = 0x7fc00000u;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= p.T * p.dim) { return; }
  let id = ids[i / p.dim];
  var v = NAN_BITS;
  if (id < p.vocab) { v = table[id * p.dim + i % p.dim]; }
  out[i] = v;
}

// Scatter-add without float atomics, so the sum order (and the result) is the same on every run: a
// workgroup owns vocab rows [v0, v0 + ROWS) and TILE columns of dTable, and scans all of ids in tiles of
// TILE. A prefix sum compacts the tile's ids that fall in its rows, in order of t; each thread then adds
// those dOut rows into its own column. A thread only ever touches its own column of the workgroup's
// rows, so its read-modify-writes need no barrier. Grid: [vocab / ROWS, dim / TILE].
const ROWS = 256u;   // vocab rows a workgroup owns
const TILE = 256u;   // threads: ids scanned per step, and dTable columns per workgroup

var<workgroup> scan: array<u32, TILE>;   // inclusive prefix sum of "ids[t0 + l] is in my rows"
var<workgroup> hits: array<u32, TILE>;   // positions t of those ids, in increasing t

@compute @workgroup_size(TILE)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let v0 = wg.x * ROWS;
  let v1 = min(v0 + ROWS, p.vocab);
  let col = wg.y * TILE + l;
  let colOk = col < p.dim;
  if (!ACCUMULATE && colOk) {
    for (var v = v0; v < v1; v++) { dTable[v * p.dim + col] = 0.0; }
  }

  for (var t0 = 0u; t0 < p.T; t0 += TILE) {
    let t = t0 + l;
    var mine = 0u;
    if (t < p.T) {
      let id = ids[t];
      mine = select(0u, 1u, id >= v0 && id < v1);
    }
    // Hillis–Steele inclusive scan of `mine` over the tile.
    scan[l] = mine;
    for (var o = 1u; o < TILE; o <<= 1u) {
      workgroupBarrier();
      var add = 0u;
      if (l >= o) { add = scan[l - o]; }
      workgroupBarrier();
      scan[l] += add;
    }
    workgroupBarrier();
    if (mine == 1u) { hits[scan[l] - 1u] = t; }
    workgroupBarrier();
    let n = scan[TILE - 1u];
    if (colOk) {
      for (var h = 0u; h < n; h++) {
        let th = hits[h];
        let i = ids[th] * p.dim + col;
        dTable[i] += dOut[th * p.dim + col];
      }
    }
    workgroupBarrier();   // scan and hits are rewritten by the next tile
  }
}
