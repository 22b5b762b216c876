// Calibration and evaluation text for LaDiMo (arXiv 2408.04278) §5.1: named domains, each a training and a
// held-out text with one document per line. One rule for every host: a CLI data folder, the user's files in
// the browser, the built-in Brown Corpus. The spec picks the calibration domains and the evaluation domain.
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

/** Calibration windows of `size` tokens, taken round-robin across domains so even a small budget spans them all. */
export async function calibrationWindows(data: TextData, spec: RunSpec, tok: Tokenizer, size: number): Promise<CalibWindow[]> {
  const field = 'calibration.domains';
  const names = spec[field] === 'all' ? data.domains.map((d) => d.name) : spec[field].split(',').map((d) => d.trim());
  const perDomain = Math.ceil(spec['calibration.tokens'] / size / names.length) + 1;
  const lists = await Promise.all(names.map(async (d) => evalWindows(await domainOf(data, d, field).text('train'), tok, size, perDomain)));
  const out: CalibWindow[] = [];
  for (let i = 0; out.length * size < spec['calibration.tokens'] && lists.some((l) => i < l.length); i++) {
    lists.forEach((l, j) => i < l.length && out.push({ domain: names[j], ids: l[i] }));
  }
  return out;
}

/** The held-out windows perplexity, agreement and KL are measured on (spec eval.domain). */
export async function evaluationWindows(data: TextData, spec: RunSpec, tok: Tokenizer, size: number): Promise<number[][]> {
  const text = await domainOf(data, spec['eval.domain'], 'eval.domain').text('valid');
  return evalWindows(text, tok, size, spec['eval.maxWindows']);
}
