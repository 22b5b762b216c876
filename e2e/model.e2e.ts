// End to end: the Model stage loads stories260K (llama2.c .bin + tok512.bin) through the "Choose files…"
// input, shows its model card, generates greedily in the engine worker on Chromium's SwiftShader WebGPU and
// reproduces llama2.c's reference text, exports model.onnx, and then shows a clear error for a truncated
// copy of the .bin. Saves e2e/artifacts/model.png and e2e/artifacts/model-error.png.
//
//   node --import ./bin/register.mjs --test e2e/model.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { e2eSkip, keepScreenshot, startPage } from './harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));
const STORIES = join(root, '..', 'shared', 'models', 'stories260K');
const MODEL = join(STORIES, 'stories260K.bin');
const TOKENIZER = join(STORIES, 'tok512.bin');
const GGUF = join(STORIES, 'tinyllamas-stories-260k-f32.gguf');
// llama2.c's greedy continuation of BOS for stories260K (../shared/models/README.md).
const REFERENCE = 'Once upon a time, there was a little girl named Lily.';
const LOAD_TIMEOUT_MS = 120_000;
const GENERATE_TIMEOUT_MS = 180_000;

const skip = e2eSkip({ [MODEL]: 'the test models (../shared/models from the repo root)', [TOKENIZER]: 'the test models (../shared/models from the repo root)' });


test('Model stage: load stories260K from files, generate the reference text, export ONNX, explain a truncated file', { skip, timeout: 480_000 }, async (t) => {
  let server: ViteDevServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  let shot = 'model.png';
  const log: string[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'moefy-e2e-'));
  try {
    let url: string;
    ({ server, browser, page, url } = await startPage(t, log));
    let loads = 0;
    page.on('load', () => loads++);
    await page.goto(url);

    // ---- the Model stage, from the sidebar
    await page.getByRole('link', { name: /Model/ }).click();
    await page.getByRole('heading', { level: 1, name: 'Model' }).waitFor({ timeout: 30_000 });
    assert.match(page.url(), /#model$/);
    await page.locator('[data-gpu-status], .badge-good, .badge-warn, .badge-bad').first().waitFor({ timeout: 60_000 });

    // ---- load the llama2.c checkpoint through the visible "Choose files…" button's input
    const t0 = Date.now();
    await page.getByLabel('Choose files…').setInputFiles([MODEL, TOKENIZER]);
    const source = page.locator('[data-model-status]');
    await page.locator('[data-model-status="ready"], [data-model-status="error"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
    if ((await source.getAttribute('data-model-status')) === 'error') {
      assert.fail(`loading stories260K failed:\n${await page.getByTestId('model-error').innerText()}`);
    }
    const card = page.getByTestId('model-card');
    await card.waitFor({ timeout: 10_000 });
    const cardText = await card.innerText();
    t.diagnostic(`loaded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.match(cardText, /stories260K\.bin/);
    assert.match(cardText, /LAYERS\s+5\b/i);
    assert.match(cardText, /HIDDEN SIZE\s+64\b/i);
    assert.match(cardText, /HEADS Q \/ KV\s+8 \/ 4/i);
    assert.match(cardText, /VOCABULARY\s+512\b/i);
    assert.match(cardText, /llama2\.c/);
    assert.match(cardText, /Weights \(f32\)/);

    // ---- generate 40 tokens greedily from BOS (empty prompt)
    const maxTokens = page.getByLabel('Max tokens');
    await maxTokens.fill('40');
    assert.equal(await page.getByRole('radio', { name: 'Greedy' }).getAttribute('aria-checked'), 'true');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.locator('[data-gen-status="done"], [data-gen-status="error"]').waitFor({ timeout: GENERATE_TIMEOUT_MS });
    const output = (await page.getByTestId('gen-output').innerText()).trim();
    const meta = (await page.getByTestId('gen-meta').innerText()).trim();
    t.diagnostic(`generated: ${JSON.stringify(output)}`);
    t.diagnostic(meta);
    assert.ok(output.startsWith(REFERENCE), `greedy text should start with the llama2.c reference:\n  got:  ${output}\n  want: ${REFERENCE}…`);
    assert.match(meta, /^40 tokens · [\d.]+ tokens\/s · reached max tokens$/);

    // ---- Export ONNX downloads model.onnx
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.getByRole('button', { name: 'Export ONNX' }).click()]);
    assert.equal(download.suggestedFilename(), 'model.onnx');
    const onnxPath = join(tmp, 'model.onnx');
    await download.saveAs(onnxPath);
    const onnxBytes = statSync(onnxPath).size;
    t.diagnostic(`model.onnx: ${onnxBytes} bytes`);
    assert.ok(onnxBytes > 1_000_000, `model.onnx holds the weights (${onnxBytes} bytes)`);
    await page.getByTestId('export-status').waitFor({ timeout: 10_000 });

    mkdirSync(artifacts, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0)); // the sticky header would be drawn mid-page
    await page.screenshot({ path: `${artifacts}model.png`, fullPage: true });

    // ---- a truncated copy of the .bin: the error panel names the file and says it is short
    const truncated = join(tmp, 'stories260K-truncated.bin');
    const bytes = readFileSync(MODEL);
    writeFileSync(truncated, bytes.subarray(0, bytes.byteLength >> 1));
    shot = 'model-error.png';
    await page.getByLabel('Choose files…').setInputFiles([truncated, TOKENIZER]);
    await page.locator('[data-model-status="error"], [data-model-status="ready"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
    assert.equal(await source.getAttribute('data-model-status'), 'error', 'the truncated checkpoint must not load');
    const errorText = await page.getByTestId('model-error').innerText();
    t.diagnostic(`error panel:\n${errorText}`);
    assert.match(errorText, /stories260K-truncated\.bin/, 'the error names the file');
    assert.match(errorText, /truncated|shorter|too short/i, 'the error says the file is truncated');
    assert.match(errorText, /CheckpointError/);
    assert.match(errorText, /What to do:/);
    assert.equal(await card.count(), 0, 'no model card after a failed load');
    assert.equal(loads, 1, 'the page never reloaded');
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.join('\n')}`);
    throw e;
  } finally {
    await keepScreenshot(t, page, shot);
    await browser?.close().catch(() => {});
    await server?.close().catch(() => {});
    rmSync(tmp, { recursive: true, force: true });
  }
});

// A file server on 127.0.0.1 with CORS and Range support whose first full GET of each file drops the
// connection half-way: the page's download must resume with a Range request into its OPFS cache.
test('Model stage: a GGUF from a URL downloads into the OPFS cache, resuming after a dropped connection', { skip: skip || (!existsSync(GGUF) && `${GGUF} not found`), timeout: 300_000 }, async (t) => {
  let server: ViteDevServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  let files: Server | undefined;
  const log: string[] = [];
  const hits: { range?: string; status: number }[] = [];
  try {
    const bytes = readFileSync(GGUF);
    let dropped = false;
    files = createHttpServer((req, res) => {
      const cors = {
        'access-control-allow-origin': '*',
        'access-control-allow-headers': 'range',
        'access-control-expose-headers': 'content-range, content-length, etag, accept-ranges',
      };
      if (req.method === 'OPTIONS') return void res.writeHead(204, cors).end();
      if (req.url !== '/models/stories260K.gguf') return void res.writeHead(404, cors).end();
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m ? Number(m[1]) : 0;
      const body = bytes.subarray(start);
      const status = m ? 206 : 200;
      hits.push({ range: req.headers.range, status });
      res.writeHead(status, {
        ...cors,
        'content-length': String(body.byteLength),
        'accept-ranges': 'bytes',
        etag: '"stories-v1"',
        ...(m && { 'content-range': `bytes ${start}-${bytes.byteLength - 1}/${bytes.byteLength}` }),
      });
      if (!m && !dropped) {
        dropped = true;
        res.write(body.subarray(0, body.byteLength >> 1), () => setTimeout(() => res.socket?.destroy(), 50));
        return;
      }
      res.end(body);
    });
    await new Promise<void>((resolve) => files!.listen(0, '127.0.0.1', resolve));
    const fa = files.address();
    assert.ok(fa && typeof fa === 'object');
    const modelUrl = `http://127.0.0.1:${fa.port}/models/stories260K.gguf`;

    let url: string;
    ({ server, browser, page, url } = await startPage(t, log));
    await page.goto(`${url}#model`);
    await page.getByRole('heading', { level: 1, name: 'Model' }).waitFor({ timeout: 30_000 });

    const load = async () => {
      await page!.getByLabel('From a URL').fill(modelUrl);
      await page!.getByRole('button', { name: 'Load' }).first().click();
      await page!.locator('[data-model-status="ready"], [data-model-status="error"]').waitFor({ timeout: LOAD_TIMEOUT_MS });
      if ((await page!.locator('[data-model-status]').getAttribute('data-model-status')) === 'error') {
        assert.fail(`loading ${modelUrl} failed:\n${await page!.getByTestId('model-error').innerText()}`);
      }
    };
    await load();
    t.diagnostic(`requests: ${JSON.stringify(hits)}`);
    assert.equal(hits.length, 2, 'one dropped request and one resumed request');
    assert.equal(hits[0].status, 200);
    assert.match(hits[1].range ?? '', /^bytes=[1-9]\d*-$/, 'the second request continues from the bytes already stored');
    assert.equal(hits[1].status, 206);
    const cardText = await page.getByTestId('model-card').innerText();
    assert.match(cardText, /GGUF/);
    assert.match(cardText, /Downloaded into the OPFS cache/);

    // The resumed bytes are right: greedy generation matches llama2.c's reference.
    await page.getByLabel('Max tokens').fill('16');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.locator('[data-gen-status="done"], [data-gen-status="error"]').waitFor({ timeout: GENERATE_TIMEOUT_MS });
    const output = (await page.getByTestId('gen-output').innerText()).trim();
    t.diagnostic(`generated: ${JSON.stringify(output)}`);
    assert.ok(REFERENCE.startsWith(output.slice(0, 30)) && output.length >= 30, `greedy text from the GGUF: ${output}`);

    // Loaded again: served from the cache, no request.
    await load();
    assert.equal(hits.length, 2, 'the second load makes no request');
    assert.match(await page.locator('.panel-foot').innerText(), /Cached: 1 file, 1\.1 MiB/);
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.join('\n')}`);
    throw e;
  } finally {
    await keepScreenshot(t, page, 'model-url.png');
    await browser?.close().catch(() => {});
    await server?.close().catch(() => {});
    files?.closeAllConnections();
    files?.close();
  }
});
