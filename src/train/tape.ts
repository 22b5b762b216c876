// A small explicit autograd for training on the GPU. An op (ops.ts) runs its kernels at once during the
// forward and, when an input needs a gradient, pushes a backward closure onto the tape; backward() replays
// the closures in reverse order. Nothing is a graph to trace: the tape is a list, and each closure reads the
// gradient of its op's output (Var.grad) and adds into its inputs' gradients.
//
//   Param   a named model weight; a trainable one owns a gradient buffer that steps accumulate into
//           (micro-batches add up until the optimizer has used it: `fresh` says the next write overwrites)
//   Var     a tensor the forward produced or read, with the gradient slot the backward fills
//   Tape    allocates Vars from the Gpu's buffer pool and gives each back as soon as its producer's backward
//           has run (nothing before it in the tape can read it), so a warm step reuses the same buffers and
//           creates none; checkpoint() stores a block's input only and recomputes its inside in the backward
//           (activation checkpointing, Chen et al. 2016, arXiv:1604.06174).
import type { Gpu } from '../gpu/device.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { add } from '../ops/elementwise.ts';

export class Param {
  /** ∂L/∂value, allocated at the first gradient and kept (the optimizer reads it) */
  grad: Tensor | null = null;
  /** the gradient buffer holds nothing of the current step: the next contribution overwrites it */
  fresh = true;

  constructor(
    /** the checkpoint's name, e.g. model.layers.0.self_attn.q_proj.weight */
    readonly name: string,
    readonly value: Tensor,
    public trainable: boolean,
  ) {}

  /** Starts a step: the next gradient written overwrites what the last one left. */
  zeroGrad(): void {
    this.fresh = true;
  }

  release(): void {
    this.value.release();
    this.grad?.release();
    this.grad = null;
  }
}

export class Var {
  /** ∂L/∂value, filled by the backward; null until some consumer wrote it */
  grad: Tensor | null = null;
  /** grad is someone else's (a seed given to backward()), so freeing the Var leaves it */
  gradBorrowed = false;
  freed = false;

  constructor(
    readonly value: Tensor,
    readonly requiresGrad: boolean,
    /** the parameter this Var reads: its gradient goes to param.grad */
    readonly param: Param | null,
    /** the tape that allocated value and gives it back (null: the caller's tensor) */
    public owner: Tape | null,
  ) {}

  get shape(): readonly number[] {
    return this.value.shape;
  }
}

interface Entry {
  outputs: Var[];
  /** tensors the closure reads besides Vars (attention's log-sum-exp), given back after it ran */
  saved: Tensor[];
  backward: () => void;
}

export class Tape {
  private entries: Entry[] = [];
  private readonly owned: Var[] = [];

  /** `recording` false: a forward only (evaluation); ops then keep nothing for a backward. */
  constructor(readonly gpu: Gpu, readonly recording: boolean) {}

  // ------------------------------------------------------------------------------------------ forward

  /** A tensor the caller owns that needs no gradient (token ids, teacher logits). */
  input(t: Tensor): Var {
    return new Var(t, false, null, null);
  }

  /** A parameter as an input; it needs a gradient when it is trainable and this tape records. */
  param(p: Param): Var {
    return new Var(p.value, this.recording && p.trainable, p, null);
  }

  /** Whether an op over `inputs` must record its backward. */
  needs(...inputs: Var[]): boolean {
    return this.recording && inputs.some((v) => v.requiresGrad);
  }

  /** An op's output, from the buffer pool, needing a gradient when one of `inputs` does. */
  output(shape: readonly number[], label: string, ...inputs: Var[]): Var {
    const v = new Var(this.gpu.tensor(shape, 'f32', label), this.needs(...inputs), null, this);
    this.owned.push(v);
    return v;
  }

  /**
   * Pushes an op's backward closure, run by backward() once some output has a gradient. An op whose
   * outputs need none records nothing and its `saved` tensors go back at once.
   */
  record(outputs: Var[], backward: () => void, saved: Tensor[] = []): void {
    if (outputs.some((v) => v.requiresGrad)) this.entries.push({ outputs, saved, backward });
    else for (const t of saved) t.release();
  }

  /**
   * y = block(x), keeping only x and y: the block runs on a tape of its own whose insides go back to the
   * pool at once, and the backward runs the block again on a recording tape to get them back, then
   * replays that tape from y's gradient. The block must be deterministic (every kernel here is), so the
   * second run reproduces the first bit for bit.
   */
  checkpoint(x: Var, block: (t: Tape, x: Var) => Var): Var {
    const inner = new Tape(this.gpu, this.recording);
    const y = block(inner, x);
    if (y.owner !== inner) throw new Error('checkpoint: the block must return a tensor it computed');
    y.owner = this;   // y outlives the block's insides: this tape gives it back
    this.owned.push(y);
    inner.release();
    this.record([y], () => {
      const again = new Tape(this.gpu, true);
      try {
        again.backward(block(again, x), y.grad!);
      } finally {
        again.release();
      }
    });
    return y;
  }

  // ----------------------------------------------------------------------------------------- backward

  /**
   * Adds gradients into `targets` (in order) with a kernel that writes them: `kernel(outs, accumulate)`
   * writes ∂L/∂target i into outs[i], or adds into it when `accumulate` (kernels that can: canAccumulate).
   * A target's first gradient is written into its own buffer; later ones are added, by the kernel when it
   * can, else through a pool buffer. Targets that need no gradient get a scratch buffer, dropped after.
   */
  grads(targets: readonly Var[], kernel: (outs: Tensor[], accumulate: boolean) => void, canAccumulate = false): void {
    const state = targets.map((v) => (!v.requiresGrad ? 'skip' : this.hasGrad(v) ? 'add' : 'fresh'));
    if (!state.some((s) => s !== 'skip')) return;
    const scratch: Tensor[] = [];
    const pool = (v: Var) => {
      const s = this.gpu.tensor(v.shape, 'f32', 'grad.scratch');
      scratch.push(s);
      return s;
    };
    if (canAccumulate && state.every((s) => s !== 'fresh')) {
      kernel(targets.map((v, i) => (state[i] === 'add' ? this.gradBuffer(v) : pool(v))), true);
    } else {
      const outs = targets.map((v, i) => (state[i] === 'fresh' ? this.claimGrad(v) : pool(v)));
      kernel(outs, false);
      targets.forEach((v, i) => state[i] === 'add' && add(this.gradBuffer(v), outs[i], 'inplace'));
    }
    for (const s of scratch) s.release();
  }

  /**
   * Runs the recorded closures in reverse, giving back each op's outputs after its own closure ran. With
   * `root`, its gradient starts as `seed` (borrowed: the caller keeps it).
   */
  backward(root?: Var, seed?: Tensor): void {
    if (!this.recording) throw new Error('backward: this tape did not record (it was made for a forward only)');
    if (root) {
      if (!seed) throw new Error('backward: a root needs a seed gradient');
      root.grad = seed;
      root.gradBorrowed = true;
    }
    const entries = this.entries;
    this.entries = [];
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      if (e.outputs.some((v) => v.grad)) e.backward();
      for (const v of e.outputs) this.free(v);
      for (const t of e.saved) t.release();
    }
  }

  /** Gives back everything this tape still holds (outputs of ops never backpropagated, saved tensors). */
  release(): void {
    for (const e of this.entries) for (const t of e.saved) t.release();
    this.entries = [];
    for (const v of this.owned) this.free(v);
    this.owned.length = 0;
  }

  // ------------------------------------------------------------------------------------------ helpers

  private hasGrad(v: Var): boolean {
    return v.param ? v.param.grad !== null && !v.param.fresh : v.grad !== null;
  }

  private gradBuffer(v: Var): Tensor {
    const g = v.param ? v.param.grad : v.grad;
    if (!g) throw new Error(`tape: ${v.param?.name ?? v.value.label} has no gradient yet`);
    return g;
  }

  /** v's gradient buffer for a first write: a parameter's own (allocated once), or one from the pool. */
  private claimGrad(v: Var): Tensor {
    const p = v.param;
    if (p) {
      p.grad ??= this.gpu.tensor(p.value.shape, 'f32', `${p.name}.grad`);
      p.fresh = false;
      return p.grad;
    }
    v.grad = this.gpu.tensor(v.shape, 'f32', `${v.value.label}.grad`);
    return v.grad;
  }

  private free(v: Var): void {
    if (v.freed || v.owner !== this) return;
    v.freed = true;
    v.value.release();
    if (v.grad && !v.gradBorrowed) v.grad.release();
    v.grad = null;
  }
}
