// The Mixture-of-Depths ensemble's loss over shaders/mod_mix.wgsl (Luo & Specia 2024, arXiv:2410.13077,
// §2.2 eq. for the routed ensemble and §2.3's distillation term): K members' logits for a chunk of rows,
// router logits, and next-token targets → the mixed prediction's cross-entropy, Σ_i KL(p_final ‖ p_i),
// their gradients, or the mixed log-probabilities. Mixing in probability space (Σ g_i·softmax(z_i)) has
// no composition of existing kernels: its gradient weighs each member by its share of the target's
// probability, so it is one kernel, and logit-space mixing shares it.
import shader from '../../shaders/mod_mix.wgsl';
import { fmtShape } from '../gpu/errors.ts';
import { paramStruct } from '../gpu/params.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { rowThreads } from './reduce.ts';
import { expectFinite, expectInt, expectTensor, fail, grid, outTensor } from './validate.ts';

const Params = paramStruct([['rows', 'u32'], ['n', 'u32'], ['K', 'u32'], ['row0', 'u32'], ['ceScale', 'f32'], ['klScale', 'f32']] as const);

/** Members the kernel mixes at most (MAXK in the shader). */
export const MOD_MAX_MEMBERS = 16;

export type MixSpace = 'prob' | 'logit';

export interface MixArgs {
  /** the members' logits [K, rows, vocab] (member 0: the final layer, the KL's teacher) */
  logits: Tensor;
  /** router logits [R, K] of the whole sequence; the chunk is its rows row0 .. row0 + rows − 1 */
  router: Tensor;
  mix: MixSpace;
  /** the chunk's first row in the sequence (default 0) */
  row0?: number;
}

/** Checks the shapes; returns [K, rows, n, R]. */
function dims(op: string, a: MixArgs): [number, number, number, number] {
  expectTensor(op, 'logits', a.logits, [null, null, null]);
  const [K, rows, n] = a.logits.shape;
  if (K < 1 || K > MOD_MAX_MEMBERS) fail(op, `logits ${fmtShape(a.logits.shape)}: between 1 and ${MOD_MAX_MEMBERS} members, got ${K}`);
  if (n === 0) fail(op, `logits ${fmtShape(a.logits.shape)} has no classes`);
  expectTensor(op, 'router', a.router, [null, K]);
  const R = a.router.shape[0];
  const row0 = a.row0 ?? 0;
  expectInt(op, 'row0', row0, 0, R);
  if (row0 + rows > R) fail(op, `rows ${row0} .. ${row0 + rows - 1} of logits ${fmtShape(a.logits.shape)} lie past router ${fmtShape(a.router.shape)}`);
  if (a.mix !== 'prob' && a.mix !== 'logit') fail(op, `mix must be 'prob' or 'logit', got '${String(a.mix)}'`);
  return [K, rows, n, R];
}

function dispatch(op: string, entry: string, a: MixArgs, bindings: Tensor[], scales = { ce: 0, kl: 0 }): void {
  const [K, rows, n] = a.logits.shape;
  a.logits.gpu.dispatch({
    op,
    shapes: { logits: a.logits.shape, router: a.router.shape },
    shader,
    entry,
    constants: { WG: rowThreads(n), PROB: a.mix === 'prob' },
    params: Params.pack({ rows, n, K, row0: a.row0 ?? 0, ceScale: scales.ce, klScale: scales.kl }),
    bindings: [a.logits, a.router, ...bindings],
    workgroups: grid(rows),
  });
}

export interface MixLossOut {
  /** −log P_mix(target) at rows row0 .. row0 + rows − 1 of [R] */
  ce?: Tensor;
  /** Σ_{i≥1} KL(p_0 ‖ p_i), the same rows of [R] */
  kl?: Tensor;
}

/** The loss rows of a chunk: ce and kl [R], only the chunk's rows written. */
export function modMixLoss(a: MixArgs & { targets: Tensor }, out: MixLossOut = {}): { ce: Tensor; kl: Tensor } {
  const op = 'modMixLoss';
  const [, , , R] = dims(op, a);
  expectTensor(op, 'targets', a.targets, [R], 'u32');
  const ce = outTensor(op, a.logits, out.ce, [R]), kl = outTensor(op, a.logits, out.kl, [R]);
  dispatch(op, 'mix_loss', a, [a.targets, ce, kl]);
  return { ce, kl };
}

/**
 * Loss rows as modMixLoss and the gradient of ceScale·Σ ce + klScale·Σ kl over the chunk: dLogits
 * [K, rows, n] (the teacher's KL share is a constant) and dRouter [R, K] (the chunk's rows written).
 */
export function modMixLossBackward(
  a: MixArgs & { targets: Tensor; ceScale: number; klScale: number },
  out: MixLossOut & { dLogits?: Tensor; dRouter?: Tensor } = {},
): { ce: Tensor; kl: Tensor; dLogits: Tensor; dRouter: Tensor } {
  const op = 'modMixLossBackward';
  const [K, , , R] = dims(op, a);
  expectTensor(op, 'targets', a.targets, [R], 'u32');
  expectFinite(op, 'ceScale', a.ceScale);
  expectFinite(op, 'klScale', a.klScale);
  const ce = outTensor(op, a.logits, out.ce, [R]), kl = outTensor(op, a.logits, out.kl, [R]);
  const dLogits = outTensor(op, a.logits, out.dLogits, a.logits.shape);
  const dRouter = outTensor(op, a.logits, out.dRouter, [R, K]);
  dispatch(op, 'mix_loss_grad', a, [a.targets, ce, kl, dLogits, dRouter], { ce: a.ceScale, kl: a.klScale });
  return { ce, kl, dLogits, dRouter };
}

/** The mixed prediction's log-probabilities [rows, n] of a chunk. */
export function modMixLogProbs(a: MixArgs, out?: Tensor): Tensor {
  const op = 'modMixLogProbs';
  const [, rows, n] = dims(op, a);
  const y = outTensor(op, a.logits, out, [rows, n]);
  dispatch(op, 'mix_logprobs', a, [y]);
  return y;
}
