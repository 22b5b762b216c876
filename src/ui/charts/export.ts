// What a chart downloads, as pure functions of plain data: its CSV (RFC 4180), its file names, and the
// standalone SVG document its figure serialises to (the DOM walk that feeds these is figure-export.ts).

// ---------------------------------------------------------------- CSV

export type CsvCell = string | number | boolean | null;

/** A chart's data as a table: one header, rows of the same length. */
export interface CsvTable {
  header: string[];
  rows: CsvCell[][];
}

/** One field: quoted when it holds a quote, comma, line break or edge whitespace; quotes doubled. null → empty. */
export function csvField(v: CsvCell): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The table as CSV text: CRLF line ends, a line end after the last row. */
export function toCsv(table: CsvTable): string {
  const width = table.header.length;
  const lines = [table.header, ...table.rows].map((row, i) => {
    if (row.length !== width) throw new Error(`CSV row ${i}: ${row.length} fields, the header has ${width}`);
    return row.map(csvField).join(',');
  });
  return `${lines.join('\r\n')}\r\n`;
}

/** 'loss-curves', 'csv' → 'moefy-loss-curves.csv' */
export function chartFileName(chartId: string, ext: 'csv' | 'svg' | 'png'): string {
  return `moefy-${chartId}.${ext}`;
}

// ---------------------------------------------------------------- SVG

/**
 * The computed CSS properties that decide how SVG content paints. A standalone SVG has no stylesheet, so
 * each element carries these inline. `inherited` ones are written only where they differ from the parent
 * (the child inherits the rest); the others only where they differ from their initial value.
 */
export const SVG_STYLE_PROPS: readonly { name: string; inherited: boolean; initial?: string }[] = [
  { name: 'fill', inherited: true },
  { name: 'fill-opacity', inherited: true },
  { name: 'stroke', inherited: true },
  { name: 'stroke-width', inherited: true },
  { name: 'stroke-dasharray', inherited: true },
  { name: 'stroke-opacity', inherited: true },
  { name: 'stroke-linecap', inherited: true },
  { name: 'stroke-linejoin', inherited: true },
  { name: 'font-family', inherited: true },
  { name: 'font-size', inherited: true },
  { name: 'font-weight', inherited: true },
  { name: 'font-style', inherited: true },
  { name: 'letter-spacing', inherited: true },
  { name: 'text-anchor', inherited: true },
  { name: 'dominant-baseline', inherited: true },
  { name: 'shape-rendering', inherited: true },
  { name: 'paint-order', inherited: true },
  { name: 'visibility', inherited: true },
  { name: 'opacity', inherited: false, initial: '1' },
  { name: 'display', inherited: false, initial: 'inline' },
];

/** The `style` attribute for one element, from its computed style and its parent's (null at the root). */
export function inlineStyleText(own: (prop: string) => string, parent: ((prop: string) => string) | null): string {
  const decls: string[] = [];
  for (const p of SVG_STYLE_PROPS) {
    const v = own(p.name);
    if (!v) continue;
    const same = p.inherited ? parent !== null && parent(p.name) === v : v === p.initial;
    if (!same) decls.push(`${p.name}:${v}`);
  }
  return decls.join(';');
}

/** A standalone SVG document: the figure's parts (width × height CSS pixels) on a background, `pad` px around. */
export function svgDocument(width: number, height: number, background: string, parts: readonly string[], pad = 16): string {
  const w = Math.ceil(width + 2 * pad);
  const h = Math.ceil(height + 2 * pad);
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">` +
    `<rect width="100%" height="100%" fill="${background}"/><g transform="translate(${pad}, ${pad})">${parts.join('')}</g></svg>\n`
  );
}
