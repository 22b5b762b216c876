// The charts' pure parts: CSV quoting (RFC 4180), the standalone SVG's inlined styles, and the data
// shaping behind the axes and histograms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartFileName, csvField, inlineStyleText, svgDocument, toCsv } from '../src/ui/charts/export.ts';
import { fmtChange, histogramSteps, linearAxis, logAxis, subscript, thin } from '../src/ui/charts/chart-data.ts';
import { dendrogramLayout } from '../src/ui/charts/dendrogram.ts';
import { averageLinkage, cutTree } from '../src/methods/dive/cluster.ts';

test('CSV fields are quoted only when they must be, with quotes doubled', () => {
  assert.equal(csvField('news'), 'news');
  assert.equal(csvField(0.0612), '0.0612');
  assert.equal(csvField(-3), '-3');
  assert.equal(csvField(true), 'true');
  assert.equal(csvField(null), '');
  assert.equal(csvField(''), '');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('"'), '""""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('cr\rhere'), '"cr\rhere"');
  assert.equal(csvField(' padded'), '" padded"');
  assert.equal(csvField('trailing\t'), '"trailing\t"');
  assert.equal(csvField('semi;colon'), 'semi;colon');
});

test('a CSV table is CRLF-separated rows that parse back to the same fields', () => {
  const table = {
    header: ['layer', 'domain', 'share'],
    rows: [
      [4, 'news, "wire"', 0.25],
      [5, 'fiction\nshort', null],
    ],
  };
  const text = toCsv(table);
  assert.equal(text, 'layer,domain,share\r\n4,"news, ""wire""",0.25\r\n5,"fiction\nshort",\r\n');
  assert.deepEqual(parseCsv(text), [
    ['layer', 'domain', 'share'],
    ['4', 'news, "wire"', '0.25'],
    ['5', 'fiction\nshort', ''],
  ]);
  assert.equal(toCsv({ header: ['a'], rows: [] }), 'a\r\n');
  assert.throws(() => toCsv({ header: ['a', 'b'], rows: [[1, 2], [3]] }), /CSV row 2: 1 fields, the header has 2/);
});

test('file names carry the chart id and the format', () => {
  assert.equal(chartFileName('loss-curves', 'csv'), 'moefy-loss-curves.csv');
  assert.equal(chartFileName('expert-load', 'png'), 'moefy-expert-load.png');
});

test('inlined styles: everything at the root, then only what differs from the parent or the initial value', () => {
  const root: Record<string, string> = { fill: 'rgb(0, 0, 0)', 'font-family': 'Inter, sans-serif', 'font-size': '14px', opacity: '1', display: 'block' };
  const child: Record<string, string> = { ...root, fill: 'rgb(37, 72, 200)', opacity: '0.5', display: 'inline' };
  const get = (s: Record<string, string>) => (p: string) => s[p] ?? '';
  assert.equal(inlineStyleText(get(root), null), 'fill:rgb(0, 0, 0);font-family:Inter, sans-serif;font-size:14px;display:block');
  assert.equal(inlineStyleText(get(child), get(root)), 'fill:rgb(37, 72, 200);opacity:0.5');
  assert.equal(inlineStyleText(get(root), get(root)), 'display:block');
});

test('the SVG document wraps the parts with a background and padding', () => {
  const doc = svgDocument(100.4, 50, '#fff', ['<svg x="0" y="0"/>', '<svg x="10" y="0"/>'], 16);
  assert.match(doc, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="133" height="82" viewBox="0 0 133 82">/);
  assert.ok(doc.includes('<rect width="100%" height="100%" fill="#fff"/><g transform="translate(16, 16)"><svg x="0" y="0"/><svg x="10" y="0"/></g></svg>'));
});

test('log axis: the 1-2-5 ladder around the data, decades only past two of them', () => {
  assert.deepEqual(logAxis(0.06, 0.35), { domain: [0.05, 0.5], ticks: [0.05, 0.1, 0.2, 0.5] });
  assert.deepEqual(logAxis(0.061, 0.85), { domain: [0.05, 1], ticks: [0.05, 0.1, 0.2, 0.5, 1] });
  assert.deepEqual(logAxis(0.2, 0.2), { domain: [0.2, 0.5], ticks: [0.2, 0.5] });
  assert.deepEqual(logAxis(0.028, 1.02), { domain: [0.02, 2], ticks: [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2] });
  assert.deepEqual(logAxis(2e-4, 3), { domain: [1e-4, 10], ticks: [1e-4, 1e-3, 0.01, 0.1, 1, 10] });
  assert.throws(() => logAxis(0, 1), /0 < min/);
});

test('linear axis: round steps, the domain snapped out to whole steps', () => {
  assert.deepEqual(linearAxis(0, 0.2, 4), { domain: [0, 0.2], ticks: [0, 0.05, 0.1, 0.15, 0.2], step: 0.05, decimals: 2 });
  const x = linearAxis(0.985, 1.165);
  assert.deepEqual(x.ticks, [0.95, 1, 1.05, 1.1, 1.15, 1.2]);
  assert.equal(x.decimals, 2);
  const y = linearAxis(0.997, 1.06);
  assert.deepEqual(y.ticks, [0.98, 1, 1.02, 1.04, 1.06]);
  assert.equal(linearAxis(0, 0.1, 4).step, 0.025);
  assert.equal(linearAxis(0, 0.1, 4).decimals, 3);
  assert.deepEqual(linearAxis(1, 1).domain, [1, 1.2]);
});

test('thinning keeps the ends and at most max rows', () => {
  const rows = Array.from({ length: 1001 }, (_, i) => i);
  const t = thin(rows, 11);
  assert.deepEqual(t, [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  assert.deepEqual(thin([1, 2, 3], 10), [1, 2, 3]);
});

test('histogram steps: a row per bin start and a closing row at w = 1, shares of samples', () => {
  const rows = histogramSteps([
    { key: 'all', histogram: { counts: [1, 3, 0, 4], samples: 8 } },
    { key: 'news', histogram: { counts: [0, 1, 1, 0], samples: 2 } },
  ]);
  assert.deepEqual(rows, [
    { w: 0, all: 0.125, news: 0 },
    { w: 0.25, all: 0.375, news: 0.5 },
    { w: 0.5, all: 0, news: 0.5 },
    { w: 0.75, all: 0.5, news: 0 },
    { w: 1, all: 0.5, news: 0 },
  ]);
  assert.throws(() => histogramSteps([
    { key: 'a', histogram: { counts: [1, 2], samples: 3 } },
    { key: 'b', histogram: { counts: [1], samples: 1 } },
  ]), /'b' has 1 bins, expected 2/);
});

test('labels: signed changes and subscript layer indices', () => {
  assert.equal(fmtChange(1.042), '+4.2%');
  assert.equal(fmtChange(0.97), '−3.0%');
  assert.equal(fmtChange(1), '+0.0%');
  assert.equal(subscript(12), '₁₂');
});

/** A minimal RFC 4180 reader, to check that what toCsv writes reads back as the same fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field), rows.push(row), (row = []), (field = ''), i++;
    } else field += c;
  }
  return rows;
}

test('the dendrogram lays leaves out depth-first from the root, each merge over its children at its distance', () => {
  // 0 and 2 are close, 1 is far from both: the tree is (1, (0, 2)), so 1 is drawn first
  const dist = [0, 1, 0.1, 1, 0, 1, 0.1, 1, 0];
  const merges = averageLinkage(dist, 3);
  const { order, links, height } = dendrogramLayout(merges, 3);
  assert.deepEqual(order, [1, 0, 2]);
  assert.deepEqual(links, [
    { a: 1, b: 2, mid: 1.5, ha: 0, hb: 0, h: 0.1 },
    { a: 0, b: 1.5, mid: 0.75, ha: 0, hb: 0.1, h: 1 },
  ]);
  assert.equal(height, 1);
  // every cut of the tree is contiguous along the leaf order, so cluster blocks sit on the heatmap's diagonal
  for (let n = 1; n <= 3; n++) {
    const labels = cutTree(merges, 3, n).map((_, i, l) => l[order[i]]);
    assert.equal(new Set(labels).size, labels.filter((c, i) => c !== labels[i - 1]).length, `cut into ${n}`);
  }
  assert.throws(() => dendrogramLayout(merges.slice(1), 3), /1 merges for 3 points/);
});
