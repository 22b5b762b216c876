// The connection to the engine worker, shared by every store: one Worker behind the EngineApi interface
// (src/worker/api.ts), created on first use. Stopping it (to cancel work that cannot stop itself) drops
// whatever lived in it, so stores subscribe to hear of that.
import * as Comlink from 'comlink';
import type { EngineApi } from '../worker/api.ts';

let worker: Worker | null = null;
let engine: Comlink.Remote<EngineApi> | null = null;
const stoppedListeners = new Set<() => void>();
const failedListeners = new Set<(message: string) => void>();

export function getEngine(): Comlink.Remote<EngineApi> {
  if (!engine) {
    const w = new Worker(new URL('../worker/engine.worker.ts', import.meta.url), { type: 'module', name: 'moefy-engine' });
    w.addEventListener('error', (e) => {
      if (worker === w) for (const f of failedListeners) f(e.message || 'the engine worker failed to start');
    });
    worker = w;
    engine = Comlink.wrap<EngineApi>(w);
  }
  return engine;
}

/** Whether a worker is running (calls would not start one). */
export function engineStarted(): boolean {
  return engine !== null;
}

/** Terminates the worker; the next getEngine() starts a fresh one. */
export function stopEngine(): void {
  const had = worker !== null;
  worker?.terminate();
  worker = null;
  engine = null;
  if (had) for (const f of stoppedListeners) f();
}

/** Called after stopEngine() ended a running worker (its model and state are gone). */
export function onEngineStopped(f: () => void): void {
  stoppedListeners.add(f);
}

/** Called when the worker script fails (it is then stopped). */
export function onEngineFailed(f: (message: string) => void): void {
  failedListeners.add(f);
}
