// A chart figure as a file: every <svg> in the figure, cloned with its computed styles inlined and placed
// where it sits on screen, becomes one standalone SVG; the PNG is that SVG drawn on a canvas at 2×.
// Figures keep all their text inside SVG, so the file shows what the page shows (tooltips excepted).
import { inlineStyleText, svgDocument } from './export.ts';

const BACKGROUND = '#ffffff';
/** White space around the figure in the files, as the card gives it on the page. */
const PAD = 16;

export interface FigureSvg {
  markup: string;
  width: number;
  height: number;
}

/** The figure element's SVG content as one standalone SVG document. */
export function figureSvg(figure: HTMLElement): FigureSvg {
  const box = figure.getBoundingClientRect();
  const svgs = [...figure.querySelectorAll('svg')].filter((s) => !s.parentElement?.closest('svg'));
  if (svgs.length === 0) throw new Error('the figure has no SVG to export');
  const serializer = new XMLSerializer();
  const parts = svgs.map((svg) => {
    const r = svg.getBoundingClientRect();
    const clone = inlineStyles(svg);
    clone.setAttribute('x', String(r.left - box.left));
    clone.setAttribute('y', String(r.top - box.top));
    clone.setAttribute('width', String(r.width));
    clone.setAttribute('height', String(r.height));
    return serializer.serializeToString(clone);
  });
  return { markup: svgDocument(box.width, box.height, BACKGROUND, parts, PAD), width: box.width + 2 * PAD, height: box.height + 2 * PAD };
}

/** A deep clone of `svg` whose elements carry their computed paint and font properties as `style`. */
function inlineStyles(svg: SVGSVGElement): SVGSVGElement {
  const clone = svg.cloneNode(true) as SVGSVGElement;
  const source = [svg, ...svg.querySelectorAll('*')];
  const target = [clone, ...clone.querySelectorAll('*')];
  const computed = new Map<Element, CSSStyleDeclaration>(source.map((el) => [el, getComputedStyle(el)]));
  source.forEach((el, i) => {
    const own = computed.get(el)!;
    const parent = i === 0 ? null : computed.get(el.parentElement!)!;
    target[i].setAttribute('style', inlineStyleText((p) => own.getPropertyValue(p), parent && ((p) => parent.getPropertyValue(p))));
  });
  return clone;
}

/** The SVG rasterised at `scale`× (2× by default, sharp on high-density screens), as a PNG blob. */
export async function svgToPng(svg: FigureSvg, scale = 2): Promise<Blob> {
  const url = URL.createObjectURL(new Blob([svg.markup], { type: 'image/svg+xml' }));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = Math.ceil(svg.width * scale);
    canvas.height = Math.ceil(svg.height * scale);
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('no 2D canvas context');
    ctx.scale(scale, scale);
    ctx.drawImage(img, 0, 0, svg.width, svg.height);
    return await new Promise<Blob>((resolve, reject) =>
      canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('the canvas gave no PNG'))), 'image/png'),
    );
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** Hands a blob to the browser as a download named `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
