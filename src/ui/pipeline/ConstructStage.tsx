// Pipeline stage 3, Construct (LaDiMo §4.1): which layers become MoE blocks, how each FFN's neurons are
// split into N experts and how routers start; then capture those layers' FFN inputs and outputs over the
// calibration text (§4.2), the pairs every later stage learns from.
import { useStore } from '../../state/store.ts';
import { usePipeline } from '../../state/pipeline.ts';
import { specLayers } from '../../state/spec.ts';
import { fmtCount, fmtInt } from '../format.ts';
import { PageHead, RunButton, TaskBar, Waiting, useResumeInfo } from './common.tsx';
import { SpecField } from './SpecField.tsx';

export function ConstructStage() {
  useResumeInfo();
  const summary = useStore((s) => (s.model.status === 'ready' ? s.model.summary : null));
  const dataReady = usePipeline((s) => s.data.status === 'ready');
  const spec = usePipeline((s) => s.spec);
  const capture = usePipeline((s) => s.results.capture);
  const resume = usePipeline((s) => s.resume);
  const run = usePipeline((s) => s.run);
  const c = summary?.config;
  let layers: number[] = [];
  let layersError: string | null = null;
  if (c) {
    try {
      layers = specLayers(spec, c.nLayers);
    } catch (e) {
      layersError = (e as Error).message;
    }
  }
  const N = spec['construct.experts'];
  const k = spec['train.topK'];
  return (
    <>
      <PageHead n={3} name="Construct">
        Each chosen FFN is cut along its intermediate dimension into N experts (LaDiMo §4.1), with a router in front. The paper converts the
        last layers, which are the least sensitive.
      </PageHead>
      <section className="panel" aria-labelledby="construct-title">
        <div className="panel-head">
          <div>
            <h2 id="construct-title">Experts</h2>
            <p className="panel-sub">
              {summary && c ? `${summary.name}: ${c.nLayers} layers, hidden ${c.dim}, FFN ${c.hiddenDim}, so ${fmtInt(Math.ceil(c.hiddenDim / N))} neurons per expert.` : 'How the FFNs become experts.'}
            </p>
          </div>
        </div>
        <div className="panel-body field-grid">
          <SpecField k="construct.layers" />
          <SpecField k="construct.experts" />
          <SpecField k="construct.split" />
          <SpecField k="construct.routerInit" />
        </div>
        <div className="panel-body">
          {!c ? (
            <Waiting title="No model loaded" href="#model" action="Load a model">
              Construct splits the loaded model's FFNs; load one first.
            </Waiting>
          ) : layersError ? (
            <div className="callout callout-bad" role="alert">
              <p>{layersError}</p>
            </div>
          ) : (
            <LayerStrip nLayers={c.nLayers} layers={layers} N={N} k={k} dim={c.dim} hiddenDim={c.hiddenDim} />
          )}
        </div>
      </section>
      <section className="panel" aria-labelledby="capture-title" data-capture={capture ? 'done' : 'none'}>
        <div className="panel-head">
          <div>
            <h2 id="capture-title">Capture</h2>
            <p className="panel-sub">Runs the dense model over the calibration text and keeps each chosen FFN's input x and output f(x) (§4.2).</p>
          </div>
          {capture && <span className="pill pill-good">{fmtInt(capture.tokens)} tokens captured</span>}
        </div>
        <div className="panel-body">
          {!dataReady && (
            <div className="callout callout-info">
              <p>
                Choose calibration text in <a href="#data">Data</a> first.
              </p>
            </div>
          )}
          {resume?.captured && !capture && <p className="muted">A capture for this spec is stored in this browser; running it again loads it.</p>}
          <TaskBar stages={['capture']} />
          {capture && (
            <p className="muted">
              Layers {capture.layers.join(', ')}: {fmtInt(capture.tokens)} (x, f(x)) pairs each, stored in this browser so a reload keeps them.
            </p>
          )}
        </div>
        <div className="panel-foot actions">
          <RunButton onClick={() => void run('capture')} disabled={!c || !dataReady || !!layersError}>
            {capture ? 'Capture again' : 'Capture activations'}
          </RunButton>
          {capture && (
            <a className="btn btn-secondary" href="#distill">
              Next: distill
            </a>
          )}
        </div>
      </section>
    </>
  );
}

/** The model's layers, the converted ones marked, and what a converted FFN activates per token at top-k. */
function LayerStrip({ nLayers, layers, N, k, dim, hiddenDim }: { nLayers: number; layers: number[]; N: number; k: number; dim: number; hiddenDim: number }) {
  const expertDim = Math.ceil(hiddenDim / N);
  const ffnDense = 3 * dim * hiddenDim;
  const ffnMoe = Math.min(k, N) * 3 * dim * expertDim + N * dim;
  return (
    <div className="layer-strip" aria-label="Converted layers">
      {Array.from({ length: nLayers }, (_, l) => (
        <span key={l} className={`layer-chip ${layers.includes(l) ? 'is-moe' : ''}`} title={layers.includes(l) ? `layer ${l}: ${N} experts` : `layer ${l}: dense`}>
          {l}
        </span>
      ))}
      <span className="muted layer-strip-note">
        {layers.length} of {nLayers} layers become MoE · per token a converted FFN activates {fmtCount(ffnMoe)} of {fmtCount(ffnDense)} parameters at top-{k}
      </span>
    </div>
  );
}
