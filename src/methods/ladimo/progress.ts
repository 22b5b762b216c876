// Progress and cancellation of the LaDiMo stages (arXiv 2408.04278), the same for both hosts: a long stage
// reports TaskProgress (the worker forwards it to the UI's progress bar, the CLI prints it as text lines)
// and checks an AbortSignal between steps, windows and points, only where every recorded GPU command has
// been submitted and read back, so a cancelled stage leaves nothing half-recorded.

/** The long-running stages (and the runs of methods 'train', 'dive', 'llama-moe-v2' and 'mod' in the worker); each reports TaskProgress and can be cancelled. */
export type TaskStage = 'capture' | 'distill' | 'profile' | 'evaluate' | 'sweep' | 'export' | 'train' | 'dive' | 'llamaMoeV2' | 'mod';

export interface TaskProgress {
  stage: TaskStage;
  done: number;
  total: number;
  /** what done/total count: 'tokens', 'steps', 'windows', 'points', 'files' */
  unit: string;
  /** seconds left at the current rate; null until there is a rate */
  etaSeconds: number | null;
  /** one line for the progress bar, e.g. "layer 3: step 120/400, mse 2.1e-2" */
  detail: string;
}

/** What a stage is given besides its inputs: where progress and messages go, and when to stop. */
export interface TaskControl {
  onProgress?: (p: TaskProgress) => void;
  /** one line about something that happened (a checkpoint loaded, a layer finished) */
  onLog?: (message: string) => void;
  signal?: AbortSignal;
}

/** Throws what a cancelled stage rejects with: a DOMException named 'AbortError', as fetch's. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new DOMException(`${what} was cancelled`, 'AbortError');
}

/**
 * A stage's progress reporter over `total` units: the ETA comes from the rate since the meter started,
 * counted from `done0` (the work a resumed stage found already done).
 */
export function meter(control: TaskControl, stage: TaskStage, unit: string, total: number, done0 = 0): (done: number, detail: string) => void {
  const t0 = performance.now();
  return (done, detail) => {
    const seconds = (performance.now() - t0) / 1000;
    const rate = done > done0 && seconds > 0 ? (done - done0) / seconds : 0;
    control.onProgress?.({ stage, done, total, unit, etaSeconds: rate > 0 ? (total - done) / rate : null, detail });
  };
}

/** Passes on at most one TaskProgress every `everyMs`, and always the last of a stage (done = total). */
export function throttled(onProgress: (p: TaskProgress) => void, everyMs: number): (p: TaskProgress) => void {
  let last = -Infinity;
  return (p) => {
    const now = performance.now();
    if (now - last < everyMs && p.done < p.total) return;
    last = now;
    onProgress(p);
  };
}

/** TaskProgress as a text line: "distill: 120/400 steps, layer 3: step 120/400, mse 2.1e-2, ETA 31 s". */
function progressLine(p: TaskProgress): string {
  const eta = p.etaSeconds !== null && p.done < p.total ? `, ETA ${p.etaSeconds.toFixed(0)} s` : '';
  return `${p.stage}: ${p.done}/${p.total} ${p.unit}${p.detail ? `, ${p.detail}` : ''}${eta}`;
}

/** The CLI's control: progress as a text line every 5 s (and at the end of each stage), messages as lines. */
export function textControl(line: (m: string) => void): TaskControl {
  return { onProgress: throttled((p) => line(progressLine(p)), 5000), onLog: line };
}
