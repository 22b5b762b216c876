// The arithmetic task of the Mixture-of-Depths comparison (arXiv:2410.13077 §3 tunes on arithmetic word
// problems and scores the answer by exact match): word problems as ../shared/data/corpus/math.*.txt writes
// them, one document a line of several problems, each "…? 42 - 15 = 27. The answer is 27.", read from a
// data folder, or drawn by a seeded generator of the same five kinds for the browser, which has no files.
import { Rng } from '../../data/rng.ts';
import type { TextDomain } from '../ladimo/data.ts';

export interface Problem {
  /** the problem up to and including '=', which the model continues */
  prompt: string;
  /** the true result after the '=' */
  answer: number;
}

/** "… = 27. The answer is 27." — the prompt through '=' and the number after it. */
const PROBLEM = /\s*([^=]*?=)\s*(-?\d+)\. The answer is -?\d+\./g;

/** The problems of a text (one document a line), in order; text that holds none is an error naming `where`. */
export function parseProblems(text: string, where: string): Problem[] {
  const out: Problem[] = [];
  for (const line of text.split('\n')) {
    for (const m of line.matchAll(PROBLEM)) out.push({ prompt: m[1].trim(), answer: Number(m[2]) });
  }
  if (!out.length) throw new Error(`${where}: no arithmetic word problems ("… = N. The answer is N.") in it`);
  return out;
}

const NAMES = ['Ava', 'Ben', 'Chloe', 'Dan', 'Eli', 'Fay', 'Gus', 'Hana', 'Ivan', 'Jill', 'Kofi', 'Lena', 'Milo', 'Nora', 'Omar', 'Pia'];
const ITEMS = ['apples', 'books', 'cards', 'coins', 'cookies', 'marbles', 'pencils', 'shells', 'stamps', 'stickers'];

/** One problem of a kind drawn uniformly from the five of math.train.txt, with its ranges of numbers. */
export function generateProblem(rng: Rng): string {
  const pick = <T>(a: readonly T[]) => a[rng.int(a.length)];
  const between = (lo: number, hi: number) => lo + rng.int(hi - lo + 1);
  const x = pick(NAMES);
  let y = pick(NAMES);
  while (y === x) y = pick(NAMES);
  const it = pick(ITEMS);
  const done = (q: string, expr: string, r: number) => `${q} ${expr} = ${r}. The answer is ${r}.`;
  switch (rng.int(5)) {
    case 0: {
      const a = between(10, 99), b = between(1, a);
      return done(`${x} had ${a} ${it} and gave ${b} of them to ${y}. How many ${it} are left?`, `${a} - ${b}`, a - b);
    }
    case 1: {
      const a = between(2, 12), b = between(10, 99);
      return done(`${x} buys ${a} boxes of ${it} with ${b} ${it} in each box. How many ${it} does ${x} buy?`, `${a} * ${b}`, a * b);
    }
    case 2: {
      const b = between(2, 9), q = between(10, 99);
      return done(`${x} shares ${b * q} ${it} equally among ${b} friends. How many ${it} does each friend get?`, `${b * q} / ${b}`, q);
    }
    case 3: {
      const a = between(1, 99), b = between(2, 12), c = between(2, 9), d = between(1, a);
      return done(`${x} has ${a} ${it}, buys ${b} packs of ${c} more, then loses ${d}. How many ${it} now?`, `${a} + ${b} * ${c} - ${d}`, a + b * c - d);
    }
    default: {
      const a = between(1, 99), b = between(1, 99);
      return done(`${x} has ${a} ${it}. ${y} gives ${x} ${b} more ${it}. How many ${it} does ${x} have now?`, `${a} + ${b}`, a + b);
    }
  }
}

/** Documents of `perDoc` generated problems each, one a line. */
export function generateDocuments(rng: Rng, docs: number, perDoc = 8): string {
  return Array.from({ length: docs }, () => Array.from({ length: perDoc }, () => generateProblem(rng)).join(' ')).join('\n');
}

/**
 * The built-in arithmetic domain: as many documents as math.train.txt / math.valid.txt hold (1080 and 120),
 * drawn from two seeds of `seed` so training and held-out text never share a draw.
 */
export function builtinProblemDomain(seed: number): TextDomain {
  const train = generateDocuments(new Rng(seed * 2 + 1), 1080);
  const valid = generateDocuments(new Rng(seed * 2 + 2), 120);
  const bytes = (s: string) => new TextEncoder().encode(s).byteLength;
  return { name: 'math-builtin', trainBytes: bytes(train), validBytes: bytes(valid), text: async (s) => (s === 'train' ? train : valid) };
}
