// An element and its content width, following resizes: charts draw at an explicit width so their layout
// (legend rows, small multiples, heatmap cells) is computed, not guessed. A callback ref, so an element
// that mounts later (after an empty state) is observed too.
import { useLayoutEffect, useState } from 'react';

export function useWidth<T extends HTMLElement>(): { ref: (el: T | null) => void; el: T | null; width: number } {
  const [el, setEl] = useState<T | null>(null);
  const [width, setWidth] = useState(0);
  useLayoutEffect(() => {
    if (!el) return;
    setWidth(el.clientWidth);
    const ro = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    ro.observe(el);
    return () => ro.disconnect();
  }, [el]);
  return { ref: setEl, el, width };
}
