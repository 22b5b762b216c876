// `moefy` command line. Subcommands parse their flags here and hand plain arguments to a GPU task.
import { runTask } from './host.ts';
import type { CheckReport } from '../ops/check.ts';

const USAGE = `moefy — turn dense LLaMA-family models into Mixture-of-Experts models on WebGPU

usage:
  moefy kernels check [--json] [--smoke] [--seed N] [--filter TEXT]...
      every kernel on fresh random inputs (ragged shapes included) against its float64 reference;
      exits 1 if any relative error exceeds its bound
  moefy kernels bench [--json] [--suite small|full] [--filter TEXT]... [--reps N] [--samples N]
      median GFLOP/s and GB/s per kernel and shape after warm-up; the full suite (default on a GPU) has
      GEMM 4096³ and the 7B FFN/MoE shapes, the small one (default on SwiftShader) finishes in a minute

environment:
  MOEFY_HOST=dawn|chromium   where GPU work runs (default: Dawn in Node; headless Chromium when the
                             only adapter is SwiftShader)
  MOEFY_DAWN_FLAGS=...       extra Dawn flags, e.g. enable-dawn-features=allow_unsafe_apis
`;

interface Flags {
  positional: string[];
  bool: Set<string>;
  values: Map<string, string[]>;
}

function parse(argv: string[], valued: string[]): Flags {
  const f: Flags = { positional: [], bool: new Set(), values: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      f.positional.push(a);
      continue;
    }
    const name = a.slice(2);
    if (valued.includes(name)) {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`--${name} needs a value`);
      f.values.set(name, [...(f.values.get(name) ?? []), v]);
    } else f.bool.add(name);
  }
  return f;
}

class UsageError extends Error {}

function intFlag(f: Flags, name: string): number | undefined {
  const v = f.values.get(name)?.at(-1);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${v}'`);
  return n;
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [group, cmd] = argv;
    if (group === 'kernels' && cmd === 'check') {
      const f = parse(argv.slice(2), ['seed', 'filter']);
      const json = f.bool.has('json');
      const log = json ? () => {} : (m: string) => console.log(m);
      const res = await runTask('kernelsCheck', { seed: intFlag(f, 'seed'), filter: f.values.get('filter'), smoke: f.bool.has('smoke') }, log);
      const failed = res.reports.filter((r: CheckReport) => !r.ok);
      if (json) console.log(JSON.stringify(res, (_, v) => (v === Infinity ? 'Infinity' : v), 2));
      else console.log(`\n${res.device}\n${res.reports.length - failed.length} passed, ${failed.length} failed`);
      return failed.length ? 1 : 0;
    }
    if (group === 'kernels' && cmd === 'bench') {
      const f = parse(argv.slice(2), ['filter', 'reps', 'samples', 'suite']);
      const json = f.bool.has('json');
      const suite = f.values.get('suite')?.at(-1);
      if (suite !== undefined && suite !== 'small' && suite !== 'full') throw new UsageError(`--suite must be small or full, got '${suite}'`);
      const res = await runTask('kernelsBench', { suite, filter: f.values.get('filter'), reps: intFlag(f, 'reps'), samples: intFlag(f, 'samples') }, json ? () => {} : (m) => console.log(m));
      if (json) console.log(JSON.stringify(res, null, 2));
      else console.log(`\n${res.suite} suite on ${res.device}${res.software ? '  (software adapter: speed here says nothing about a GPU)' : ''}`);
      return 0;
    }
    if (!group || group === 'help' || argv.includes('--help')) {
      console.log(USAGE);
      return 0;
    }
    throw new UsageError(`unknown command: ${argv.join(' ')}`);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`moefy: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    console.error(`moefy: ${(e as Error)?.stack ?? e}`);
    return 1;
  }
}
