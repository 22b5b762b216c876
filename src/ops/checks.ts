// Every kernel's verification cases, in the order `moefy kernels check` runs them.
import type { CheckCase } from './check.ts';
import { matmulChecks } from './matmul.check.ts';
import { normChecks } from './norm.check.ts';
import { ropeChecks } from './rope.check.ts';
import { embeddingChecks } from './embedding.check.ts';
import { activationChecks } from './activation.check.ts';
import { attentionChecks } from './attention.check.ts';
import { softmaxChecks } from './softmax.check.ts';
import { reduceChecks } from './reduce.check.ts';
import { optimChecks } from './optim.check.ts';
import { moeChecks } from './moe.check.ts';
import { moeTrainChecks } from './moe-train.check.ts';
import { errorChecks } from './errors.check.ts';
import { elementwiseChecks } from './elementwise.check.ts';
import { modelChecks } from '../model/llama.check.ts';
import { moeBlockChecks } from '../moe/block.check.ts';
import { captureChecks } from '../methods/ladimo/capture.check.ts';
import { profileChecks } from '../methods/ladimo/profile.check.ts';
import { qwen2moeChecks } from '../model/qwen2moe.check.ts';
import { trainChecks } from '../train/train.check.ts';
import { trainMoeChecks } from '../train/moe.check.ts';
import { trainAttentionMoeChecks } from '../train/attention-moe.check.ts';
import { momentsChecks } from './moments.check.ts';
import { moeBiasChecks } from './moe-bias.check.ts';
import { diveChecks } from '../methods/dive/dive.check.ts';
import { modMixChecks } from './mod-mix.check.ts';
import { ensembleChecks } from '../methods/mod/ensemble.check.ts';
import { neuronStatsChecks } from './neuron-stats.check.ts';
import { headGateChecks } from './head-gate.check.ts';
import { llamaMoeV2Checks } from '../methods/llama-moe-v2/identity.check.ts';

export const allChecks: CheckCase[] = [
  ...matmulChecks,
  ...elementwiseChecks,
  ...normChecks,
  ...ropeChecks,
  ...embeddingChecks,
  ...activationChecks,
  ...attentionChecks,
  ...softmaxChecks,
  ...reduceChecks,
  ...optimChecks,
  ...moeChecks,
  ...moeTrainChecks,
  ...errorChecks,
  ...modelChecks,
  ...moeBlockChecks,
  ...captureChecks,
  ...profileChecks,
  ...qwen2moeChecks,
  ...trainChecks,
  ...trainMoeChecks,
  ...trainAttentionMoeChecks,
  ...momentsChecks,
  ...moeBiasChecks,
  ...diveChecks,
  ...modMixChecks,
  ...ensembleChecks,
  ...neuronStatsChecks,
  ...headGateChecks,
  ...llamaMoeV2Checks,
];

export interface CheckSelection {
  /** Only the small set the browser e2e test runs. */
  smoke?: boolean;
  /** Only cases whose "family name" contains one of these. */
  filter?: string[];
}

export function selectChecks(sel: CheckSelection): CheckCase[] {
  let cases = allChecks;
  if (sel.smoke) cases = cases.filter((c) => c.smoke);
  if (sel.filter?.length) cases = cases.filter((c) => sel.filter!.some((f) => `${c.family} ${c.name}`.includes(f)));
  return cases;
}
