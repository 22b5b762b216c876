// The run spec in the address bar. On load, a spec in the URL restores every control; a malformed or
// future-version one leaves the page on the last spec this browser used (or the defaults) and says why,
// keeping the URL as it was until a control changes. Every change rewrites the URL (replaceState, so
// the back button is not flooded) and remembers the spec for the next visit.
import { useEffect } from 'react';
import { usePipeline } from '../../state/pipeline.ts';
import { parseSpec, specToJson, type RunSpec } from '../../state/spec.ts';
import { specFromLocation, urlWithSpec } from '../../state/url.ts';

const LAST_SPEC = 'moefy.lastSpec';

function lastSpec(): RunSpec | null {
  try {
    const saved = localStorage.getItem(LAST_SPEC);
    return saved ? parseSpec(JSON.parse(saved)) : null;
  } catch {
    return null;
  }
}

export function useSpecUrl(): void {
  useEffect(() => {
    let alive = true;
    let cleanup = () => {};
    void (async () => {
      const got = await specFromLocation(window.location.href);
      if (!alive) return;
      const { setSpec } = usePipeline.getState();
      if (got === null) {
        const saved = lastSpec();
        if (saved) setSpec(saved);
      } else if (got.ok) {
        setSpec(got.spec, got.warnings.length ? got.warnings.join(' ') : null);
      } else {
        setSpec(lastSpec() ?? usePipeline.getState().spec, `The link's run spec could not be used: ${got.error.replace(/\.?$/, '.')} The page kept ${lastSpec() ? 'your last spec' : 'the defaults'}.`);
      }
      // From here on the URL follows the spec.
      let pending = 0;
      const unsubscribe = usePipeline.subscribe((s, prev) => {
        if (s.spec === prev.spec) return;
        const id = ++pending;
        localStorage.setItem(LAST_SPEC, JSON.stringify(specToJson(s.spec)));
        void urlWithSpec(window.location.href, s.spec).then((url) => {
          if (id === pending && url !== window.location.href) history.replaceState(history.state, '', url);
        });
      });
      cleanup = unsubscribe;
    })();
    return () => {
      alive = false;
      cleanup();
    };
  }, []);
}

/** The notice a link's spec left (malformed, future version, warnings). */
export function SpecNotice() {
  const notice = usePipeline((s) => s.specNotice);
  const dismiss = usePipeline((s) => s.dismissNotice);
  if (!notice) return null;
  return (
    <div className="callout callout-warn spec-notice" role="alert">
      <div className="callout-title">About this link</div>
      <p>{notice}</p>
      <button className="btn btn-secondary btn-sm" onClick={dismiss}>
        Dismiss
      </button>
    </div>
  );
}
