// Kernel benchmarks: median GFLOP/s and GB/s per kernel and shape after warm-up. Shapes are the
// foundation issue's: GEMM 1024³ and 4096³, and the FFN / MoE shapes of a 7M and a 7B LLaMA at 2048
// tokens, with the grouped MoE GEMM beside a dense GEMM of the same active FLOPs.
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { Rng } from '../data/rng.ts';
import { matmul } from './matmul.ts';

export type BenchSuite = 'small' | 'full';

export interface BenchArgs {
  /** 'full': every shape of the issue; 'small': those that finish in seconds on SwiftShader. Default:
   * full on a GPU, small on a software adapter. */
  suite?: BenchSuite;
  /** Only cases whose name contains one of these. */
  filter?: string[];
  /** Timed repetitions per sample, samples per case. */
  reps?: number;
  samples?: number;
}

export interface BenchRow {
  name: string;
  shape: string;
  ms: number;
  gflops: number;
  gbps: number;
  timer: 'timestamp' | 'wall';
  /** For MoE rows: the dense GEMM of equal active FLOPs, and the ratio of rates. */
  denseGflops?: number;
  ratioToDense?: number;
}

interface BenchCase {
  name: string;
  suite: BenchSuite;
  shape: string;
  flops: number;
  bytes: number;
  setup(gpu: Gpu, rng: Rng): { record: () => void; release: Tensor[] };
}

function gemmCase(suite: BenchSuite, name: string, M: number, N: number, K: number, transB = false): BenchCase {
  return {
    name,
    suite,
    shape: `${M}×${N}×${K}${transB ? ' (A·Bᵀ)' : ''}`,
    flops: 2 * M * N * K,
    bytes: 4 * (M * K + K * N + M * N),
    setup(gpu, rng) {
      const a = gpu.upload(rng.uniforms(M * K, -1, 1), [M, K]);
      const b = gpu.upload(rng.uniforms(K * N, -1, 1), transB ? [N, K] : [K, N]);
      const c = gpu.tensor([M, N]);
      return { record: () => void matmul(a, b, { transB, out: c }), release: [a, b, c] };
    },
  };
}

export const benchCases: BenchCase[] = [
  gemmCase('small', 'gemm 1024³', 1024, 1024, 1024),
  gemmCase('full', 'gemm 4096³', 4096, 4096, 4096),
  gemmCase('full', 'gemm A·Bᵀ 4096³', 4096, 4096, 4096, true),
];

export async function runBench(gpu: Gpu, args: BenchArgs, progress: (m: string) => void): Promise<{ suite: BenchSuite; rows: BenchRow[] }> {
  const rng = new Rng(7);
  const suite = args.suite ?? (gpu.info.software ? 'small' : 'full');
  const reps = args.reps ?? (gpu.info.software ? 1 : 10);
  const samples = args.samples ?? (gpu.info.software ? 3 : 7);
  const rows: BenchRow[] = [];
  for (const c of benchCases) {
    if (suite === 'small' && c.suite === 'full') continue;
    if (args.filter?.length && !args.filter.some((f) => c.name.includes(f))) continue;
    const { record, release } = c.setup(gpu, rng);
    await gpu.measure(1, record); // warm-up: pipeline compile, first-touch
    const times: number[] = [];
    let timer: BenchRow['timer'] = 'wall';
    for (let s = 0; s < samples; s++) {
      const m = await gpu.measure(reps, record);
      times.push(m.msPerRep);
      timer = m.source;
    }
    for (const t of release) t.release();
    const ms = median(times);
    const row: BenchRow = { name: c.name, shape: c.shape, ms, gflops: c.flops / ms / 1e6, gbps: c.bytes / ms / 1e6, timer };
    rows.push(row);
    progress(`${c.name.padEnd(34)} ${c.shape.padEnd(24)} ${ms.toFixed(3).padStart(10)} ms ${row.gflops.toFixed(1).padStart(9)} GFLOP/s ${row.gbps.toFixed(1).padStart(8)} GB/s`);
  }
  return { suite, rows };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
