// Capture (LaDiMo §4.2) keeps exactly the FFN inputs and outputs the forward computes: per layer, the
// budgeted number of rows, f(x) = down(silu(gate x) ⊙ up x) of the captured x, and the rows of a window
// equal to a tap on that window alone.
import type { CheckCase } from '../../ops/check.ts';
import { TOL, relL2 } from '../../ops/check.ts';
import { LlamaModel } from '../../model/llama.ts';
import { base, randomModel } from '../../model/llama.check.ts';
import { matvec, silu } from '../../model/llama.ref.ts';
import { captureFfn } from './capture.ts';

export const captureChecks: CheckCase[] = [
  {
    family: 'ladimo',
    name: 'capture: budgeted rows of x and f(x) per layer across windows and chunks',
    tol: TOL.gemm,
    async run(gpu, rng) {
      const c = base;
      const { index, weights } = randomModel(c, rng);
      const windows = [9, 13, 8].map((n) => Array.from({ length: n }, () => rng.int(c.vocabSize)));
      const model = await LlamaModel.load(gpu, index, { chunk: 5 });
      const budget = 25; // ends inside the third window
      const cap = await captureFfn(model, windows, [1], budget);
      const { x, fx } = cap.layers.get(1)!;
      const X = (await x.read()) as Float32Array, FX = (await fx.read()) as Float32Array;
      // rows 9..21 are the second window: compare with a tap on that window alone
      model.reset();
      const tapX = gpu.tensor([13, c.dim]);
      model.forward(windows[1].slice(0, 5), (l, xt) => l === 1 && gpu.copy(xt, tapX, 0));
      model.forward(windows[1].slice(5, 10), (l, xt) => l === 1 && gpu.copy(xt, tapX, 5 * c.dim));
      model.forward(windows[1].slice(10), (l, xt) => l === 1 && gpu.copy(xt, tapX, 10 * c.dim));
      const alone = (await tapX.read()) as Float32Array;
      tapX.release();
      model.release();
      [x, fx].forEach((t) => t.release());
      const rows = relL2(X.subarray(9 * c.dim, 22 * c.dim), alone);
      const w = (n: string) => weights.get(`model.layers.1.mlp.${n}.weight`)!;
      const want = new Float64Array(FX.length);
      const g = new Float64Array(c.hiddenDim), u = new Float64Array(c.hiddenDim), o = new Float64Array(c.dim);
      for (let t = 0; t < budget; t++) {
        const xt = Float64Array.from(X.subarray(t * c.dim, (t + 1) * c.dim));
        matvec(g, xt, w('gate_proj'), c.hiddenDim, c.dim);
        matvec(u, xt, w('up_proj'), c.hiddenDim, c.dim);
        matvec(o, g.map((gi, i) => silu(gi) * u[i]), w('down_proj'), c.dim, c.hiddenDim);
        want.set(o, t * c.dim);
      }
      const ffn = relL2(FX, want);
      const count = cap.tokens === budget && X.length === budget * c.dim ? 0 : Infinity;
      return { err: Math.max(rows, ffn, count), outputs: { 'rows = tap on the window alone': rows, 'f(x) vs float64 FFN': ffn, 'token count': count } };
    },
  },
];
