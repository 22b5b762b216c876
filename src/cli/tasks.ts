// GPU tasks the CLI runs. Each takes a Gpu and plain JSON arguments and returns plain JSON, so the same
// function runs in Node on Dawn or inside headless Chromium (src/cli/chromium-host.ts): the engine
// cannot tell which host it is on.
import type { Gpu } from '../gpu/device.ts';
import { runChecks, type CheckReport } from '../ops/check.ts';
import { allChecks } from '../ops/checks.ts';
import { runBench, type BenchArgs, type BenchRow } from '../ops/bench.ts';

export type Progress = (message: string) => void;

export interface CheckArgs {
  seed?: number;
  /** Only cases whose family or name contains one of these. */
  filter?: string[];
  smoke?: boolean;
}

export async function kernelsCheck(gpu: Gpu, args: CheckArgs, progress: Progress): Promise<{ device: string; reports: CheckReport[] }> {
  let cases = allChecks;
  if (args.smoke) cases = cases.filter((c) => c.smoke);
  if (args.filter?.length) cases = cases.filter((c) => args.filter!.some((f) => `${c.family} ${c.name}`.includes(f)));
  const reports = await runChecks(gpu, cases, args.seed ?? 1234, (r) =>
    progress(`${r.ok ? 'ok  ' : 'FAIL'} ${r.family.padEnd(10)} ${r.name.padEnd(56)} err ${fmtErr(r.err)} ≤ ${r.tol.toExponential(0)}${r.error ? `  ${r.error}` : ''}`),
  );
  return { device: describe(gpu), reports };
}

export async function kernelsBench(gpu: Gpu, args: BenchArgs, progress: Progress): Promise<{ device: string; software: boolean; suite: string; rows: BenchRow[] }> {
  const { suite, rows } = await runBench(gpu, args, progress);
  return { device: describe(gpu), software: gpu.info.software, suite, rows };
}

export const tasks = { kernelsCheck, kernelsBench };
export type TaskName = keyof typeof tasks;

function describe(gpu: Gpu): string {
  const i = gpu.info;
  const f = Object.entries(gpu.features).filter(([, v]) => v).map(([k]) => k).join(', ');
  return `${i.vendor} ${i.architecture} ${i.description}`.trim() + ` [features: ${f || 'none'}]`;
}

function fmtErr(e: number): string {
  return Number.isFinite(e) ? e.toExponential(2) : String(e);
}
