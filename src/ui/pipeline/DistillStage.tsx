// Pipeline stage 4, Distill (LaDiMo §4.2–4.3): each converted layer's MoE block is trained alone to
// reproduce its dense FFN on the captured pairs, L = MSE(f̂(x), f(x)) + α·‖L_mse‖·L_aux, with Adam.
// The loss curves grow live; a stopped run resumes from its last checkpoint in this browser.
import { useMemo } from 'react';
import { interrupted, usePipeline } from '../../state/pipeline.ts';
import type { LossPoint } from '../../worker/pipeline-types.ts';
import { ExpertLoadHeatmap, LossChart } from '../charts/index.ts';
import { fmtDuration } from '../format.ts';
import { PageHead, RunButton, TaskBar, Waiting, useResumeInfo } from './common.tsx';
import { SpecField } from './SpecField.tsx';

export function DistillStage() {
  useResumeInfo();
  const captured = usePipeline((s) => s.results.capture !== null);
  const distill = usePipeline((s) => s.results.distill);
  const resume = usePipeline((s) => s.resume);
  const running = usePipeline((s) => s.task.status === 'running' && s.task.stage === 'distill');
  const run = usePipeline((s) => s.run);
  const ready = captured || !!resume?.captured;
  const stopped = usePipeline(interrupted);
  const partial = resume?.partial ?? null;
  return (
    <>
      <PageHead n={4} name="Distill">
        Every MoE block learns to mimic the dense FFN it replaces, one layer at a time: mean squared error to f(x) plus the load-balancing loss
        weighted by α and by the MSE's own size (LaDiMo §4.3), so balance never dominates reconstruction.
      </PageHead>
      <section className="panel" aria-labelledby="train-title">
        <div className="panel-head">
          <div>
            <h2 id="train-title">Training</h2>
            <p className="panel-sub">Adam on seeded mini-batches of captured tokens; the held-out tail measures the error before and after.</p>
          </div>
        </div>
        <div className="panel-body field-grid">
          <SpecField k="train.steps" />
          <SpecField k="train.batchTokens" />
          <SpecField k="train.lr" />
          <SpecField k="train.alpha" />
          <SpecField k="train.topK" />
          <SpecField k="train.normTopK" />
          <SpecField k="train.heldOut" />
          <SpecField k="seed" />
        </div>
        <div className="panel-body">
          {!ready && (
            <Waiting title="Nothing captured yet" href="#construct" action="Go to Construct">
              Distillation learns from the captured FFN pairs: capture them in Construct first.
            </Waiting>
          )}
          {stopped && !running && (
            <div className="callout callout-info resume-offer" role="status">
              <div className="callout-title">A distillation of this spec was interrupted</div>
              <p>
                {resume!.layersDone.length ? `Layers ${resume!.layersDone.join(', ')} are done. ` : ''}
                {partial ? `Layer ${partial.layer} stopped at step ${partial.step} of ${partial.steps}. ` : ''}
                Resuming continues from the stored checkpoints and gives the same result as an uninterrupted run.
              </p>
            </div>
          )}
          <TaskBar stages={['distill']} />
        </div>
        <div className="panel-foot actions">
          <RunButton onClick={() => void run('distill')} disabled={!ready}>{stopped ? 'Resume distillation' : distill.length ? 'Distill again' : 'Start distillation'}</RunButton>
          {distill.length > 0 && (
            <a className="btn btn-secondary" href="#route">
              Next: route
            </a>
          )}
        </div>
      </section>
      <LiveLossChart />
      {distill.length > 0 && (
        <>
          <section className="panel" aria-labelledby="distill-results-title">
            <div className="panel-head">
              <div>
                <h2 id="distill-results-title">Per layer</h2>
                <p className="panel-sub">Held-out mean squared error of each block before and after training, its relative error ‖f̂ − f‖/‖f‖, and time.</p>
              </div>
            </div>
            <div className="panel-body">
              <div className="table-wrap">
                <table className="results" aria-label="Distillation results">
                  <thead>
                    <tr>
                      <th>Layer</th>
                      <th className="num">MSE before</th>
                      <th className="num">MSE after</th>
                      <th className="num">Lower by</th>
                      <th className="num">Relative error</th>
                      <th className="num">Least-used expert</th>
                      <th className="num">Time</th>
                    </tr>
                  </thead>
                  <tbody>
                    {distill.map((r) => (
                      <tr key={r.layer}>
                        <td className="mono">{r.layer}</td>
                        <td className="num mono">{r.mseBefore.toExponential(3)}</td>
                        <td className="num mono">{r.mseFinal.toExponential(3)}</td>
                        <td className="num mono">{(r.mseBefore / r.mseFinal).toFixed(2)}×</td>
                        <td className="num mono">{r.relErr.toFixed(3)}</td>
                        <td className="num mono">{(100 * Math.min(...r.expertLoad)).toFixed(1)}%</td>
                        <td className="num mono">{fmtDuration(r.seconds * 1000)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </div>
          </section>
          <ExpertLoadHeatmap rowKind="layer" rows={[...distill].sort((a, b) => a.layer - b.layer).map((r) => ({ label: `Layer ${r.layer}`, key: r.layer, shares: r.expertLoad }))} />
        </>
      )}
    </>
  );
}

/** The loss chart alone follows the streamed points, so the page around it does not re-render with them. */
function LiveLossChart() {
  const live = usePipeline((s) => s.live);
  const distill = usePipeline((s) => s.results.distill);
  // Finished layers carry their whole curve; the layer in training shows what has streamed in.
  const curves = useMemo(() => {
    const m = new Map<number, LossPoint[]>(Object.entries(live).map(([l, pts]) => [Number(l), pts]));
    for (const r of distill) m.set(r.layer, r.curve);
    return m;
  }, [live, distill]);
  return <LossChart curves={curves} />;
}
