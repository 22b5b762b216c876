// GPU tasks the CLI runs. Each takes a Gpu and plain JSON arguments and returns plain JSON, so the same
// function runs in Node on Dawn or inside headless Chromium (src/cli/chromium-host.ts): the engine
// cannot tell which host it is on.
import type { Gpu } from '../gpu/device.ts';
import { runChecks, type CheckReport } from '../ops/check.ts';
import { selectChecks, type CheckSelection } from '../ops/checks.ts';
import { runBench, type BenchArgs, type BenchRow } from '../ops/bench.ts';
import type { HostIO } from './io.ts';
import { generate, logits, ppl } from './model-tasks.ts';
import { runLadimo } from '../methods/ladimo/run.ts';
import { sweepLadimo } from '../methods/ladimo/sweep.ts';
import { trainTask } from '../train/task.ts';
import { runMod } from '../methods/mod/run.ts';
import { modIdentities } from '../methods/mod/identities.ts';
import { runDive } from '../methods/dive/run.ts';
import { runLlamaMoeV2 } from '../methods/llama-moe-v2/run.ts';

export type Progress = (message: string) => void;

export interface CheckArgs extends CheckSelection {
  seed?: number;
}

export async function kernelsCheck(gpu: Gpu, args: CheckArgs, progress: Progress): Promise<{ device: string; reports: CheckReport[] }> {
  const reports = await runChecks(gpu, selectChecks(args), args.seed ?? 1234, (r) =>
    progress(`${r.ok ? 'ok  ' : 'FAIL'} ${r.family.padEnd(10)} ${r.name.padEnd(56)} err ${fmtErr(r.err)} ≤ ${r.tol.toExponential(0)}${r.error ? `  ${r.error}` : ''}`),
  );
  return { device: gpu.describe(), reports };
}

export async function kernelsBench(gpu: Gpu, args: BenchArgs, progress: Progress): Promise<{ device: string; software: boolean; suite: string; rows: BenchRow[] }> {
  const { suite, rows } = await runBench(gpu, args, progress);
  return { device: gpu.describe(), software: gpu.info.software, suite, rows };
}

/** `run`, `sweep` and `train` take a validated spec (parseSpec); they are the spec's method end to end. */
export const tasks = { kernelsCheck, kernelsBench, generate, logits, ppl, run: runLadimo, sweep: sweepLadimo, train: trainTask, dive: runDive, llamaMoeV2: runLlamaMoeV2, mod: runMod, modIdentities } satisfies Record<string, Task>;

/** Every task: a GPU, plain JSON arguments, a progress line sink, the host's files; plain JSON back. */
type Task = (gpu: Gpu, args: never, progress: Progress, io: HostIO) => Promise<unknown>;
export type TaskName = keyof typeof tasks;

function fmtErr(e: number): string {
  return Number.isFinite(e) ? e.toExponential(2) : String(e);
}
