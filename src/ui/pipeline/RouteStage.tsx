// Pipeline stage 5, Route (LaDiMo Appendix A): profile each MoE layer's maximal routing weight w_m over
// calibration text, take the global quantiles α, β and each layer's α_i, β_i, and give every layer a
// policy by Table 1. Below, the classroom view: any text, each token coloured by its top expert.
import { useState } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import type { LayerPolicy, TokenRouting } from '../../worker/pipeline-types.ts';
import { ActivatedParamsCounter, PolicyTable, RoutingHistograms } from '../charts/index.ts';
import { PageHead, RunButton, TaskBar, Waiting } from './common.tsx';
import { SpecField } from './SpecField.tsx';

const POLICIES: LayerPolicy[] = ['top1', 'top2', 'top3', 'dynamic'];

export function RouteStage() {
  const distilled = usePipeline((s) => s.results.distill.length > 0);
  const routing = usePipeline((s) => s.results.routing);
  const run = usePipeline((s) => s.run);
  const [view, setView] = useState<'layers' | 'domains'>('layers');
  return (
    <>
      <PageHead n={5} name="Route">
        A training-free adaptive router (LaDiMo Appendix A): layers whose routers are confident use fewer experts, layers that hesitate use more,
        decided from how the maximal routing weight is distributed in each layer against all layers together.
      </PageHead>
      <section className="panel" aria-labelledby="profile-title">
        <div className="panel-head">
          <div>
            <h2 id="profile-title">Profile</h2>
            <p className="panel-sub">p_u and p_e set the shares of extremely uneven and extremely even routing distributions that define α and β.</p>
          </div>
        </div>
        <div className="panel-body field-grid">
          <SpecField k="router.pU" />
          <SpecField k="router.pE" />
          <SpecField k="router.profileTokens" />
          <SpecField k="router.policy" />
        </div>
        <div className="panel-body">
          {!distilled && (
            <Waiting title="No distilled layers yet" href="#distill" action="Go to Distill">
              Routing is profiled on the distilled MoE blocks: distill them first.
            </Waiting>
          )}
          <TaskBar stages={['profile']} />
        </div>
        <div className="panel-foot actions">
          <RunButton onClick={() => void run('profile')} disabled={!distilled}>{routing ? 'Profile again' : 'Profile routing'}</RunButton>
        </div>
      </section>
      {routing && (
        <>
          <div className="segmented chart-switch" role="radiogroup" aria-label="Histogram view">
            {(['layers', 'domains'] as const).map((v) => (
              <button key={v} role="radio" aria-checked={view === v} className={view === v ? 'on' : ''} onClick={() => setView(v)}>
                {v === 'layers' ? 'Per layer' : 'Per calibration domain'}
              </button>
            ))}
          </div>
          <RoutingHistograms profile={routing} view={view} />
          <PolicyTable profile={routing} />
          <RoutingDemo />
        </>
      )}
    </>
  );
}

/** Distinct hues for expert ids; beyond the palette they repeat with the id printed. */
const EXPERT_COLOURS = ['#2548c8', '#d9480f', '#2b8a3e', '#ae3ec9', '#e8590c', '#1098ad', '#c2255c', '#5f3dc4', '#66a80f', '#f08c00', '#0b7285', '#862e9c'];

export function expertColour(e: number): string {
  return EXPERT_COLOURS[e % EXPERT_COLOURS.length];
}

function RoutingDemo() {
  const demo = usePipeline((s) => s.demo);
  const routing = usePipeline((s) => s.results.routing!);
  const setText = usePipeline((s) => s.setDemoText);
  const routeText = usePipeline((s) => s.routeText);
  const setPolicy = usePipeline((s) => s.setLayerPolicy);
  return (
    <section className="panel" aria-labelledby="demo-title" data-testid="routing-demo">
      <div className="panel-head">
        <div>
          <h2 id="demo-title">See the routing</h2>
          <p className="panel-sub">Type text: each token is coloured by its top expert in each MoE layer. Hover a token for its routing weights.</p>
        </div>
      </div>
      <form
        className="panel-body demo-form"
        onSubmit={(e) => {
          e.preventDefault();
          void routeText();
        }}
      >
        <textarea className="input textarea" aria-label="Text to route" value={demo.text} onChange={(e) => setText(e.target.value)} rows={2} />
        <button className="btn btn-primary" type="submit" disabled={demo.busy || !demo.text.trim()}>
          Route text
        </button>
      </form>
      <div className="panel-body demo-grid">
        <div className="demo-layers">
          {routing.layers.map((l) => (
            <div className="demo-layer" key={l.layer} data-layer={l.layer}>
              <div className="demo-layer-head">
                <span className="mono">layer {l.layer}</span>
                <label className="demo-policy">
                  <span className="muted">policy</span>
                  <select
                    className="input input-sm"
                    aria-label={`Policy of layer ${l.layer}`}
                    value={demo.overrides[l.layer] ?? l.policy}
                    disabled={demo.busy}
                    onChange={(e) => void setPolicy(l.layer, e.target.value as LayerPolicy)}
                  >
                    {POLICIES.map((p) => (
                      <option key={p} value={p}>
                        {p}
                        {p === l.policy ? ' (Table 1)' : ''}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              {demo.result ? <RoutedTokens routing={demo.result} layer={l.layer} /> : <div className="muted demo-empty">Route a text to see its tokens here.</div>}
            </div>
          ))}
        </div>
        <div className="demo-side">{demo.params ? <ActivatedParamsCounter params={demo.params} /> : <p className="muted">Switch a layer's policy to see the activated parameters change.</p>}</div>
      </div>
      {demo.error && (
        <div className="panel-body">
          <div className="callout callout-bad" role="alert">
            <p>{demo.error}</p>
          </div>
        </div>
      )}
    </section>
  );
}

function RoutedTokens({ routing, layer }: { routing: TokenRouting; layer: number }) {
  const l = routing.layers.find((x) => x.layer === layer);
  if (!l) return null;
  return (
    <div className="routed" data-tokens={routing.tokens.length}>
      {routing.tokens.map((t, i) => {
        const top = l.experts[i][0];
        const title = l.experts[i].map((e, j) => `expert ${e}: ${l.weights[i][j].toFixed(3)}`).join('\n');
        return (
          <span key={i} className="routed-token" style={{ background: `${expertColour(top)}22`, borderColor: expertColour(top) }} title={title}>
            {t}
            <sub style={{ color: expertColour(top) }}>{l.experts[i].join('·')}</sub>
          </span>
        );
      })}
    </div>
  );
}
