// Method 'train' in the engine worker: whole-model training (src/train) of the model the Model stage loaded,
// on the text the Data stage chose, with snapshots in browser storage (runs.ts) so a reload or Cancel resumes.
// It is `moefy train`'s trainTask (src/train/task.ts) with what the page needs in place of what the CLI needs:
// the trainer's structured progress goes to the page at each reading of the losses (trainTask turns it into
// a text line every 5 s), the model and the text come already open, snapshots go to the browser's store
// (only the latest kept), and there is no teacher (train.teacher is a path only the CLI can open).
//
// The trained model is a fresh copy of the loaded checkpoint's weights, released when training ends: the
// trainer updates its model's weights in place, and the loaded model must stay the dense one that Generate,
// ONNX export and the LaDiMo stages use; a fresh copy also leaves nothing half-trained after Cancel or an
// error, where restoring the loaded model's weights would have to re-upload them anyway.
import { LlamaModel } from '../model/llama.ts';
import type { TextData } from '../methods/ladimo/data.ts';
import type { TaskControl } from '../methods/ladimo/progress.ts';
import type { RunSpec } from '../state/spec.ts';
import { latestSnapshot, saveSnapshot } from '../train/checkpoint.ts';
import { releaseTrainModel } from '../train/llama-train.ts';
import { loopOptions, specTrainModel, specTrainTokens, trainMetrics } from '../train/task.ts';
import { train, type EvalPoint } from '../train/trainer.ts';
import type { LoadedSession } from './model.ts';
import type { RatePoint, TrainResults, TrainResume, TrainUpdate } from './pipeline-types.ts';
import { dropOlderSnapshots, snapshotSteps, trainRunKey } from './runs.ts';
import type { BrowserStore } from './storage.ts';

/** The latest snapshot stored for `spec` on the loaded model and data. */
export async function storedTraining(store: BrowserStore, spec: RunSpec, loaded: LoadedSession, data: TextData): Promise<TrainResume | null> {
  const { dir } = await trainRunKey(spec, loaded.summary, data);
  const step = (await snapshotSteps(store, dir)).at(-1);
  return step === undefined ? null : { step, steps: spec['train.steps'], key: `${dir}/checkpoint` };
}

export async function trainLoaded(
  loaded: LoadedSession,
  data: TextData,
  spec: RunSpec,
  store: BrowserStore,
  control: TaskControl,
  onUpdate?: (u: TrainUpdate) => void,
): Promise<TrainResults> {
  if (spec.method !== 'train') throw new Error(`method: '${spec.method}'; training runs specs whose method is 'train'`);
  if (spec['train.teacher']) throw new Error('train.teacher: the workbench trains without a teacher (it is a checkpoint path, which `moefy train` opens); leave it empty');
  const { ckpt } = loaded;
  const gpu = loaded.model.gpu;
  const loop = loopOptions(spec);
  const tokens = await specTrainTokens(spec, ckpt, data);
  control.onLog?.(`${tokens.train.length.toLocaleString('en-US')} training tokens from ${tokens.domains.length} domain${tokens.domains.length > 1 ? 's' : ''}; ${tokens.valid.length} held-out windows of ${loop.seqLen + 1}`);

  const { identity, dir } = await trainRunKey(spec, loaded.summary, data);
  const resume = await latestSnapshot(store, dir, identity);
  // what the Storage panel labels the run by
  if (!resume) await store.write(`${dir}/spec.json`, new TextEncoder().encode(JSON.stringify(identity)));

  // the training forward is its own: the inference run state of the copy is kept to the minimum
  const model = await LlamaModel.load(gpu, ckpt.weights, { chunk: 1, seqLen: 1 });
  try {
    const m = specTrainModel(model, spec);
    try {
      const counts = m.params.counts();
      control.onLog?.(`training ${counts.trainable.toLocaleString('en-US')} of ${counts.total.toLocaleString('en-US')} parameters${resume ? `, resuming at step ${resume.step}` : ''}`);
      // a resumed run's charts start with what it had done
      if (resume) onUpdate?.({ points: resume.curve, evals: resume.evals, rate: null });
      let evalsSent = resume?.evals.length ? resume.evals.at(-1)!.step : -1;
      const rates: RatePoint[] = [];
      const bytes: number[] = [];
      const r = await train(m, tokens, {
        ...loop,
        resume: resume ?? undefined,
        onCheckpoint: async (s) => {
          await saveSnapshot(store, dir, s, identity);
          await dropOlderSnapshots(store, dir, s.step);
        },
        onProgress: (p) => {
          bytes.push(p.gpuBytes);
          const rate = { step: p.step, tokensPerS: p.tokensPerS };
          rates.push(rate);
          // the trainer reports the latest held-out point; one taken at this reading is new
          const evals: EvalPoint[] = p.eval.step > evalsSent ? [p.eval] : [];
          evalsSent = Math.max(evalsSent, p.eval.step);
          onUpdate?.({ points: [p.point], evals, rate });
          const q = p.point;
          control.onProgress?.({
            stage: 'train', done: p.step, total: p.steps, unit: 'steps', etaSeconds: p.step < p.steps ? p.etaSeconds : null,
            detail: `step ${p.step}/${p.steps} · loss ${q.loss.toFixed(3)} · held-out ${p.eval.loss.toFixed(3)} (step ${p.eval.step}) · ${p.tokensPerS.toFixed(0)} tokens/s`,
          });
        },
        signal: control.signal,
      });
      return { ...trainMetrics(spec, m, r, resume, bytes), rates };
    } finally {
      releaseTrainModel(m);
    }
  } finally {
    model.release();
  }
}
