// The run spec in the URL: random specs from the FIELDS table round-trip exactly, any string decodes to a
// spec or a message (never a throw), links stay under 2 KB, and errors say what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FIELDS, SPEC_VERSION, defaultSpec, parseSpec, type Field, type RunSpec } from '../src/state/spec.ts';
import { decode, encode, specFromLocation, urlWithSpec, type DecodeResult } from '../src/state/url.ts';

const BASE = 'https://moefy.example.org/workbench/';
// A failing property shrinks its counterexample; the time limit keeps a failure from looking like a hang.
const RUNS = { numRuns: 300, interruptAfterTimeLimit: 60_000, markInterruptAsFailure: true };

/** The free-text fields' values: one arbitrary for all, or one per field. */
type Text = fc.Arbitrary<string> | ((f: Field) => fc.Arbitrary<string>);

/**
 * Values of one field: its choices, numbers within min/max (integers where int), any unicode string.
 * `short`: numbers as people type them (integers up to 10^6, decimals of 3 places), for the length bound.
 */
function valueArb(f: Field, text: Text, short = false): fc.Arbitrary<unknown> {
  if (f.type === 'boolean') return fc.boolean();
  if (f.type === 'string') return f.choices ? fc.constantFrom(...f.choices) : typeof text === 'function' ? text(f) : text;
  if (short) {
    const scale = f.int ? 1 : 1000;
    const lo = Math.ceil(Math.max(f.min ?? -1e6, -1e6) * scale);
    const hi = Math.floor(Math.min(f.max ?? 1e6, 1e6) * scale);
    return fc.integer({ min: lo, max: hi }).map((n) => n / scale);
  }
  const min = f.min ?? -Number.MAX_VALUE;
  const max = f.max ?? Number.MAX_VALUE;
  if (f.int) {
    const lo = Math.max(min, Number.MIN_SAFE_INTEGER);
    const hi = Math.min(max, Number.MAX_SAFE_INTEGER);
    return fc.bigInt({ min: BigInt(lo), max: BigInt(hi) }).map(Number);
  }
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/** Up to 200 characters: any code point, or any UTF-16 unit (lone surrogates included). */
const unicode = fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))), maxLength: 200 });
const fields = FIELDS as readonly Field[];

/** A whole spec (a plain object, as parseSpec makes), each field drawn from the table or left at its default. */
function specArb(text: Text, short = false): fc.Arbitrary<RunSpec> {
  return fc.record(Object.fromEntries(fields.map((f) => [f.key, fc.oneof(fc.constant(f.default), valueArb(f, text, short))]))).map((r) => ({ ...r }) as RunSpec);
}

/** A spec with every field away from its default (but a field with one choice); `short` as in valueArb. */
function allChangedArb(text: Text, short = false): fc.Arbitrary<RunSpec> {
  const changed = (f: Field) => (f.type === 'string' && f.choices?.length === 1 ? fc.constant(f.default) : valueArb(f, text, short).filter((v) => v !== f.default));
  return fc.record(Object.fromEntries(fields.map((f) => [f.key, changed(f)]))).map((r) => ({ ...r }) as RunSpec);
}

/** Realistic text: a path in the model, data and directory fields, a short list or glob in the others. */
const PATHS = new Set(['model', 'tokenizer', 'data', 'checkpoint.dir', 'export.dir', 'train.teacher']);
const path = fc.stringMatching(/^(\/[a-zA-Z0-9._-]{1,24}){1,8}$/).filter((p) => p.length <= 120);
const word = fc.stringMatching(/^[a-z0-9*:._-]{1,16}(,[a-z0-9*:._-]{1,16}){0,2}$/);
const realistic = (f: Field) => (PATHS.has(f.key) ? path : word);

function ok(r: DecodeResult | null): RunSpec {
  assert.ok(r && r.ok, r && !r.ok ? r.error : 'no spec');
  return r.spec;
}

function err(r: DecodeResult | null): string {
  assert.ok(r && !r.ok, 'expected an error');
  return r.error;
}

test('random specs from the FIELDS table round-trip exactly, and encode the same way every time', async () => {
  await fc.assert(
    fc.asyncProperty(specArb(unicode), async (spec) => {
      const s = await encode(spec);
      assert.match(s, new RegExp(`^${SPEC_VERSION}\\.[jz]\\.[A-Za-z0-9_-]*$`));
      assert.equal(await encode(spec), s);
      const back = await decode(s);
      assert.deepEqual(ok(back), spec);
      assert.deepEqual(back.ok && back.warnings, []);
    }),
    RUNS,
  );
});

test('a spec with realistic values fits a 2 KB link, even with every field changed', async () => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(specArb(realistic, true), allChangedArb(realistic, true)), async (spec) => {
      const url = await urlWithSpec(BASE, spec);
      assert.ok(new TextEncoder().encode(url).byteLength <= 2048, `${url.length} bytes: ${url}`);
      assert.deepEqual(ok(await specFromLocation(url)), spec);
    }),
    RUNS,
  );
});

test('arbitrary strings and damaged links decode to a spec or a message, never a throw', async () => {
  const shaped = fc.tuple(fc.nat(3), fc.constantFrom('j', 'z', 'x'), fc.base64String()).map(([v, c, b]) => `${v}.${c}.${b.replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, '')}`);
  const check = async (s: string) => {
    const r = await decode(s);
    if (r.ok) assert.deepEqual(ok(await decode(await encode(r.spec))), r.spec);
    else assert.match(r.error, /^URL: /);
    const loc = await specFromLocation(s);
    assert.ok(loc === null || typeof loc.ok === 'boolean');
  };
  await fc.assert(fc.asyncProperty(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), shaped), check), RUNS);
  // Mutations of real encodings: a character replaced, a range cut, text inserted, the end cut off.
  const mutated = fc
    .tuple(specArb(unicode), fc.nat(), fc.nat(40), fc.string({ maxLength: 8 }), fc.nat(3))
    .map(async ([spec, at, len, ins, kind]) => {
      const s = await encode(spec);
      const i = at % (s.length + 1);
      return [s.slice(0, i) + ins + s.slice(i + 1), s.slice(0, i) + s.slice(i + len), s.slice(0, i) + ins + s.slice(i), s.slice(0, i)][kind];
    });
  await fc.assert(fc.asyncProperty(mutated, async (s) => check(await s)), RUNS);
});

test('a compressed link decodes; small specs stay plain JSON', async () => {
  // Written by this codec for { seed: 7, 'train.steps': 300, data: 'builtin:brown' } plus a long model path.
  const spec = { ...defaultSpec(), seed: 7, 'train.steps': 300, data: 'builtin:brown', model: '/models/corpus-llama-7m/'.repeat(4) };
  const s = await encode(spec);
  assert.match(s, /^2\.z\./);
  assert.deepEqual(ok(await decode(s)), spec);
  assert.equal(await encode({ ...defaultSpec(), seed: 7 }), '2.j.eyJzZWVkIjo3fQ');
  assert.equal(await encode(defaultSpec()), '2.j.e30');
});

test('bad links give a message naming the problem', async () => {
  const b64 = (json: string) => Buffer.from(json).toString('base64url');
  const bad: [string, RegExp][] = [
    ['3.j.e30', /^URL: the run spec was made by a newer MoEfy, version 3; this build reads ≤ 2$/],
    ['0.j.e30', /^URL: version 0 is not a run-spec version this build reads/],
    ['hello', /^URL: the run spec must look like '2\.j\.…' or '2\.z\.…'/],
    ['1.q.e30', /^URL: unknown codec 'q'/],
    ['1.j.e30=', /^URL: the data is not base64url/],
    ['1.j.e', /^URL: the data is not base64url/],
    ['1.z.AAAA', /^URL: the compressed data is damaged/],
    [`1.j.${b64('{"seed":')}`, /^URL: the data is not JSON text/],
    [`1.j.${b64('[1]')}`, /^URL: a run spec must be a JSON object/],
    [`1.j.${b64('{"train.steps":2.5}')}`, /^URL: train\.steps must be an integer, got 2\.5$/],
    [`1.j.${b64('{"router.policy":"top9"}')}`, /^URL: router\.policy must be one of adaptive, top1, top2, top3/],
    [`1.j.${b64('{"train":{"stepz":3}}')}`, /^URL: unknown field 'train\.stepz'/],
  ];
  for (const [s, re] of bad) assert.match(err(await decode(s)), re, s);
  // A deflate bomb: 4 MB of spaces is refused, not inflated.
  const bomb = await new Response(new Blob([new Uint8Array(4 << 20).fill(32)]).stream().pipeThrough(new CompressionStream('deflate-raw'))).arrayBuffer();
  assert.match(err(await decode(`1.z.${Buffer.from(bomb).toString('base64url')}`)), /^URL: the compressed data is damaged \(more than 1048576 bytes\)/);
});

test('page addresses: the spec in ?s=, the rest of the address kept, defaults leave no parameter', async () => {
  const spec = { ...defaultSpec(), seed: 3, 'router.policy': 'top1' as const };
  const url = await urlWithSpec(`${BASE}?lang=en#distill`, spec);
  assert.match(url, /^https:\/\/moefy\.example\.org\/workbench\/\?lang=en&s=2\.j\.[A-Za-z0-9_-]+#distill$/);
  assert.deepEqual(ok(await specFromLocation(url)), spec);
  assert.deepEqual(ok(await specFromLocation(new URL(url).search)), spec);
  assert.equal(await urlWithSpec(url, defaultSpec()), `${BASE}?lang=en#distill`);
  assert.equal(await specFromLocation(`${BASE}#data`), null);
  const twice = await specFromLocation(`${new URL(url).search}&s=1.j.e30`);
  assert.ok(twice?.ok && twice.warnings.some((w) => /2 's' parameters; the first one is used/.test(w)));
  const edited = await specFromLocation(`?s=1.j.${Buffer.from('{"seed":0,"train.steps":10}').toString('base64url')}`);
  assert.ok(edited?.ok && edited.spec['train.steps'] === 10);
  assert.deepEqual(edited.warnings, ['URL: seed is given at its default value, 0']);
  assert.match(err(await specFromLocation('?s=9.j.e30')), /newer MoEfy, version 9/);
});

test('an older link or spec file keeps the defaults of its version', async () => {
  // Version 1 did not renormalise the top-k weights by default; version 2 does.
  const v1 = ok(await decode(`1.j.${Buffer.from('{"seed":5}').toString('base64url')}`));
  assert.equal(v1['train.normTopK'], false);
  assert.equal(v1.seed, 5);
  assert.equal(ok(await decode(`2.j.${Buffer.from('{"seed":5}').toString('base64url')}`))['train.normTopK'], true);
  assert.equal(parseSpec({ version: 1, seed: 5 })['train.normTopK'], false);
  assert.equal(parseSpec({ version: 1, train: { normTopK: true } })['train.normTopK'], true);
  assert.equal(parseSpec({ seed: 5 })['train.normTopK'], true);
  // read back and written again, the old link's meaning survives under the new version
  const again = ok(await decode(await encode(v1)));
  assert.deepEqual(again, v1);
  const warned = await decode(`1.j.${Buffer.from('{"train.normTopK":false}').toString('base64url')}`);
  assert.ok(warned.ok);
  assert.deepEqual(warned.warnings, ['URL: train.normTopK is given at its default value, false']);
});
