// LaDiMo (arXiv 2408.04278) stage 1, "Capture" (§4.2, §5.1), as a resumable stage: the captured (x, f(x))
// rows are streamed to the checkpoint folder in chunks as they are produced (a chunk ends at a window
// boundary once it holds CHUNK_BYTES per array, or CHUNK_SECONDS have passed, or the stage is cancelled),
// so a run stopped at any point continues after its last complete chunk. Windows are independent (each
// starts at position 0), so a resumed capture equals an uninterrupted one row for row.
import type { Tensor } from '../../gpu/tensor.ts';
import type { RunCheckpoint } from './checkpoint.ts';
import { captureFfn, captureRows, type CaptureFrom, type CaptureResult, type CapturedLayer } from './capture.ts';
import type { RunContext } from './context.ts';
import { meter, throwIfAborted, type TaskControl } from './progress.ts';

/** Bytes of one array (x or f(x) of one layer) a chunk holds at least, and the longest a chunk stays open. */
const CHUNK_BYTES = 16 << 20;
const CHUNK_SECONDS = 10;

const chunkName = (i: number) => `capture.c${String(i).padStart(4, '0')}`;

interface ChunkMeta {
  fromRow: number;
  rows: number;
  /** calibration windows done at the end of the chunk */
  windows: number;
}

export interface CaptureStageOptions {
  /** rows per chunk (default: CHUNK_BYTES of one layer's x); tests make them small */
  chunkRows?: number;
}

/** The complete capture saved in ctx.store, uploaded; null when there is none. */
export async function loadCapture(ctx: RunContext): Promise<CaptureResult | null> {
  const done = await ctx.store?.loadArrays<{ tokens: number; chunks: number }>('capture');
  if (!done) return null;
  const read = await readChunks(ctx, ctx.store!, done.meta.tokens);
  if (read.chunks !== done.meta.chunks || read.tokens !== done.meta.tokens) {
    releaseLayers(read.layers);
    throw new Error(`${ctx.store!.dir}: the capture lists ${done.meta.chunks} chunks of ${done.meta.tokens} rows, found ${read.chunks} with ${read.tokens}; delete capture.json to capture again`);
  }
  return { layers: read.layers, tokens: read.tokens };
}

/** Captures the FFN pairs of ctx.layers: loaded when complete in the store, else resumed or started. */
export async function captureStage(ctx: RunContext, control: TaskControl = {}, opts: CaptureStageOptions = {}): Promise<CaptureResult> {
  const { model, layers, store } = ctx;
  const which = `layers ${layers.join(', ')}`;
  const loaded = await loadCapture(ctx);
  if (loaded) {
    control.onLog?.(`captured ${loaded.tokens} tokens for ${which}: loaded from ${store!.dir}`);
    return loaded;
  }
  const windows = ctx.calib.map((w) => w.ids);
  const total = captureRows(windows, ctx.spec['calibration.tokens']);
  let from: (CaptureFrom & { chunks: number }) | undefined;
  if (store) {
    const read = await readChunks(ctx, store, total);
    if (read.chunks) {
      from = read;
      control.onLog?.(`capture: resumed at ${from.tokens}/${total} tokens from ${store.dir}`);
    } else releaseLayers(read.layers);
  }
  const rowsPerChunk = opts.chunkRows ?? Math.max(1, Math.floor(CHUNK_BYTES / (4 * model.config.dim)));
  const report = meter(control, 'capture', 'tokens', total, from?.tokens ?? 0);
  let chunk = { index: from?.chunks ?? 0, fromRow: from?.tokens ?? 0, at: performance.now() };
  const result = await captureFfn(model, windows, layers, ctx.spec['calibration.tokens'], {
    from,
    onWindow: async (at) => {
      // captureFfn only submits a window; without waiting here the loop queues every window in moments, so
      // the progress, its ETA and the CHUNK_SECONDS rule would count queued work, and a chunk's read-back
      // would wait, without a progress line, for all of it (minutes on SwiftShader for corpus-llama-7m)
      await model.gpu.sync();
      report(at.tokens, which);
      const aborted = control.signal?.aborted ?? false;
      const full = at.tokens - chunk.fromRow >= rowsPerChunk || performance.now() - chunk.at >= CHUNK_SECONDS * 1000;
      if (store && at.tokens > chunk.fromRow && (full || aborted || at.tokens === at.total)) {
        await saveChunk(store, chunk.index, at, chunk.fromRow);
        chunk = { index: chunk.index + 1, fromRow: at.tokens, at: performance.now() };
      }
      throwIfAborted(control.signal, 'capture');
    },
  });
  await store?.saveArrays('capture', {}, { tokens: result.tokens, chunks: chunk.index });
  control.onLog?.(`captured ${result.tokens} tokens for ${which}`);
  return result;
}

/** Rows fromRow..at.tokens of every layer, read back and written as chunk `index`. */
async function saveChunk(store: RunCheckpoint, index: number, at: CaptureFrom, fromRow: number): Promise<void> {
  const rows = at.tokens - fromRow;
  const arrays: Parameters<RunCheckpoint['saveArrays']>[1] = {};
  for (const [l, c] of at.layers) {
    for (const k of ['x', 'fx'] as const) {
      const src: Tensor = c[k];
      const part = src.gpu.tensor([rows, src.shape[1]], 'f32', `capture.chunk.${k}`);
      src.gpu.copyRows(src, fromRow, part);
      arrays[`l${l}.${k}`] = { data: (await part.read()) as Float32Array, shape: part.shape };
      part.release();
    }
  }
  await store.saveArrays(chunkName(index), arrays, { fromRow, rows, windows: at.windows } satisfies ChunkMeta);
}

/** The saved chunks that follow one another from row 0, uploaded into fresh [total, H] tensors. */
async function readChunks(ctx: RunContext, store: RunCheckpoint, total: number): Promise<CaptureFrom & { chunks: number }> {
  const { gpu, layers } = ctx;
  const H = ctx.model.config.dim;
  const out = new Map<number, CapturedLayer>(layers.map((l) => [l, { layer: l, x: gpu.tensor([total, H], 'f32', `capture.${l}.x`), fx: gpu.tensor([total, H], 'f32', `capture.${l}.fx`) }]));
  let at = { windows: 0, tokens: 0, chunks: 0 };
  try {
    for (;;) {
      const saved = await store.loadArrays<ChunkMeta>(chunkName(at.chunks));
      if (!saved || saved.meta.fromRow !== at.tokens || at.tokens + saved.meta.rows > total) break;
      for (const [l, c] of out) {
        for (const k of ['x', 'fx'] as const) {
          const a = saved.arrays[`l${l}.${k}`];
          if (!a) throw new Error(`${store.dir}/${chunkName(at.chunks)}: no rows of layer ${l}; delete the capture to capture again`);
          const part = gpu.upload(a.data, a.shape, `capture.chunk.${k}`);
          gpu.copy(part, c[k], at.tokens * H);
          part.release();
        }
      }
      at = { windows: saved.meta.windows, tokens: at.tokens + saved.meta.rows, chunks: at.chunks + 1 };
    }
  } catch (e) {
    releaseLayers(out);
    throw e;
  }
  return { ...at, layers: out };
}

function releaseLayers(layers: Map<number, CapturedLayer>): void {
  for (const c of layers.values()) [c.x, c.fx].forEach((t) => t.release());
}
