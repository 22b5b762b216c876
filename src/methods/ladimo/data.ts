// Calibration and evaluation text for LaDiMo (arXiv 2408.04278) §5.1: named domains, each a training and a
// held-out text with one document per line. One rule for every host: a CLI data folder, the user's files in
// the browser, the built-in Brown Corpus. The spec picks the calibration domains and the evaluation domains.
import { isValidDoc } from '../../data/brown.ts';
import { evalWindows } from '../../eval/perplexity.ts';
import type { Tokenizer } from '../../model/tokenizer.ts';
import { baseName, readText, type ByteSource } from '../../model/source.ts';
import type { RunSpec } from '../../state/spec.ts';

export type Split = 'train' | 'valid';

export interface TextDomain {
  name: string;
  trainBytes: number;
  validBytes: number;
  text(split: Split): Promise<string>;
}

export interface TextData {
  /** where the text came from, in words ('../shared/data/corpus', 'Brown Corpus', '3 files') */
  label: string;
  /** sorted by name */
  domains: TextDomain[];
}

/** One calibration window: token ids from position 0, and the domain its text came from. */
export interface CalibWindow {
  domain: string;
  ids: number[];
}

/**
 * The domains of a set of .txt files: `<domain>.train.txt` with `<domain>.valid.txt`, and any other
 * `<name>.txt` as one domain whose documents (lines) are held out as the Brown Corpus's are (isValidDoc).
 * Hidden files are skipped; any other file is an error naming it.
 */
export async function textDataFromFiles(files: readonly ByteSource[], label: string): Promise<TextData> {
  const byName = new Map(files.filter((f) => !baseName(f.name).startsWith('.')).map((f) => [baseName(f.name), f] as const));
  const domains: TextDomain[] = [];
  for (const [name, f] of byName) {
    if (!name.endsWith('.txt')) throw new Error(`${f.name}: not a .txt file (calibration data is plain text, one document per line)`);
    const pair = /^(.*)\.(train|valid)\.txt$/.exec(name);
    if (pair) {
      const other = `${pair[1]}.${pair[2] === 'train' ? 'valid' : 'train'}.txt`;
      if (!byName.has(other)) throw new Error(`${f.name}: no ${other} beside it (a domain is a .train.txt and a .valid.txt)`);
      if (pair[2] === 'valid') continue;
      const valid = byName.get(other)!;
      domains.push({ name: pair[1], trainBytes: f.size, validBytes: valid.size, text: (s) => readText(s === 'train' ? f : valid) });
      continue;
    }
    const split = splitDocuments(await readText(f));
    if (!split.train) throw new Error(`${f.name}: needs at least 2 documents (non-empty lines), one of them held out for evaluation`);
    const enc = new TextEncoder();
    domains.push({
      name: name.slice(0, -'.txt'.length),
      trainBytes: enc.encode(split.train).byteLength,
      validBytes: enc.encode(split.valid).byteLength,
      text: async (s) => split[s],
    });
  }
  if (!domains.length) throw new Error(`${label}: no .txt files`);
  return { label, domains: domains.sort((a, b) => (a.name < b.name ? -1 : 1)) };
}

/** The held-out documents (non-empty lines) as the Brown Corpus picks them: every 10th, or the last of fewer than 10. */
function splitDocuments(text: string): Record<Split, string> {
  const docs = text.split('\n').filter((l) => l.trim());
  const pick = (valid: boolean) => docs.filter((_, i) => isValidDoc(i, docs.length) === valid).map((d) => `${d}\n`).join('');
  return { train: pick(false), valid: pick(true) };
}

function domainOf(data: TextData, name: string, field: string): TextDomain {
  const d = data.domains.find((x) => x.name === name);
  if (!d) throw new Error(`${field}: no domain '${name}' in ${data.label} (domains: ${data.domains.map((x) => x.name).join(', ')})`);
  return d;
}

/** The domains a field names: 'all' (every domain of the data), or a comma-separated list. */
function domainsOf(data: TextData, value: string, field: string): TextDomain[] {
  if (value === 'all') return data.domains;
  return value.split(',').map((d) => domainOf(data, d.trim(), field));
}

/**
 * `count` windows of `size` tokens of a split of the domains `field` names, taken round-robin across the
 * domains (the first window of each, then the second, …) so that even a small budget spans them all.
 */
async function windowsAcross(data: TextData, field: 'calibration.domains' | 'eval.domain', spec: RunSpec, split: Split, tok: Tokenizer, size: number, count: number): Promise<CalibWindow[]> {
  const domains = domainsOf(data, spec[field], field);
  const perDomain = Math.ceil(count / domains.length);
  const lists = await Promise.all(domains.map(async (d) => evalWindows(await d.text(split), tok, size, perDomain)));
  const out: CalibWindow[] = [];
  for (let i = 0; out.length < count && lists.some((l) => i < l.length); i++) {
    for (const [j, l] of lists.entries()) if (i < l.length && out.length < count) out.push({ domain: domains[j].name, ids: l[i] });
  }
  return out;
}

/** Calibration windows of `size` tokens from the training text, calibration.tokens in all. */
export function calibrationWindows(data: TextData, spec: RunSpec, tok: Tokenizer, size: number): Promise<CalibWindow[]> {
  return windowsAcross(data, 'calibration.domains', spec, 'train', tok, size, Math.ceil(spec['calibration.tokens'] / size));
}

/** The held-out windows perplexity, agreement and KL are measured on: eval.maxWindows of eval.domain's. */
export async function evaluationWindows(data: TextData, spec: RunSpec, tok: Tokenizer, size: number): Promise<number[][]> {
  return (await windowsAcross(data, 'eval.domain', spec, 'valid', tok, size, spec['eval.maxWindows'])).map((w) => w.ids);
}
