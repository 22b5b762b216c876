// LaDiMo (arXiv 2408.04278) stage 7, "Export": the converted model as a Hugging Face Qwen2-MoE folder that
// stock transformers loads, each layer's route (fixed top-k or Table 1's dynamic k with αI, βI) and the run
// spec in the moefy.json sidecar (src/model/qwen2moe.ts). The files come back as bytes: the CLI writes them
// into export.dir, the worker hands them to the page.
import { readAllWeights } from '../../model/export.ts';
import { exportQwen2Moe, type ExportedFile, type ExportMoeLayer } from '../../model/qwen2moe.ts';
import { baseName } from '../../model/source.ts';
import { specToJson } from '../../state/spec.ts';
import type { RunContext } from './context.ts';
import type { DistilledLayer } from './distill-stage.ts';
import { meter, throwIfAborted, type TaskControl } from './progress.ts';
import { routingOptions, type LayerRoute } from './routing.ts';

export async function exportFiles(
  ctx: RunContext,
  distilled: ReadonlyMap<number, DistilledLayer>,
  routes: ReadonlyMap<number, LayerRoute>,
  control: TaskControl = {},
): Promise<ExportedFile[]> {
  const { spec } = ctx;
  const normTopK = spec['train.normTopK'];
  // units: each converted layer read back, then the dense weights and the files built from them
  const report = meter(control, 'export', 'layers', routes.size + 1);
  const layersOut = new Map<number, ExportMoeLayer>();
  for (const [l, route] of routes) {
    throwIfAborted(control.signal, 'export');
    const w = distilled.get(l)!.weights;
    const [router, gate_proj, up_proj, down_proj] = (await Promise.all([w.router, w.gate_proj, w.up_proj, w.down_proj].map((t) => t.read()))) as Float32Array[];
    const r = routingOptions(route, normTopK);
    layersOut.set(l, {
      router, gate_proj, up_proj, down_proj, E: w.router.shape[0], Ie: w.gate_proj.shape[1],
      policy: r.dynamic ? { dynamic: r.dynamic } : { topK: r.topK! },
      normTopK, alphaI: route.alphaI ?? undefined, betaI: route.betaI ?? undefined,
    });
    report(layersOut.size, `layer ${l}: ${route.policy}`);
  }
  throwIfAborted(control.signal, 'export');
  const tokenizer = await Promise.all(
    ctx.modelFiles.filter((f) => ['tokenizer.json', 'tokenizer_config.json'].includes(baseName(f.name))).map(async (f) => ({ name: baseName(f.name), bytes: await f.read(0, f.size) })),
  );
  const files = exportQwen2Moe(ctx.ckpt.config, await readAllWeights(ctx.ckpt), layersOut, { spec: specToJson(spec), tokenizer });
  report(routes.size + 1, `${files.length} files of a Qwen2-MoE folder`);
  return files;
}
