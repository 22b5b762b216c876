// End to end, as a first-time visitor: the demo model (public/demo-model/) loads by itself when the page
// opens; pick the built-in Brown Corpus, set a small LaDiMo run with the visible controls (last 2 layers,
// 4 experts, a few hundred steps), capture, distill, profile, route a text, evaluate, sweep and export — following only visible
// labels and buttons — and check that every chart has data. Along the way: the main thread stays responsive
// during capture and distillation (assertResponsive); the page's URL opened in a fresh context restores the
// spec; a reload mid-distillation offers to resume from the stored checkpoint (e2e/pipeline.e2e.ts checks
// that a resumed distillation equals an uninterrupted one). Screenshots of each stage go to e2e/artifacts/workbench-*.png.
//
//   node scripts/test.mjs e2e/workbench.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { e2eSkip, keepScreenshot, loadDemoAndBrown, openStage, startPage } from './harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const DEMO = join(root, 'public', 'demo-model');
const STAGE_TIMEOUT_MS = 600_000;

const skip = e2eSkip({ [join(DEMO, 'model.safetensors')]: 'the demo model is not built (npm run train:demo makes it)' });
/** The demo model's last layer: distillation of the last 2 layers trains it second. */
const LAST_LAYER = skip ? 0 : (JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers - 1;

/** The small run, entered through the labelled controls of each page. */
const RUN: [page: string, label: string, value: string][] = [
  ['data', 'Calibration tokens per layer', '4096'],
  ['construct', 'Layers to convert', 'last:2'],
  ['construct', 'Experts per layer (N)', '4'],
  ['distill', 'Steps', '240'],
  ['distill', 'Tokens per step', '64'],
  ['distill', 'Seed', '7'],
  ['route', 'Profiling tokens', '1024'],
  ['evaluate', 'Window (tokens)', '128'],
  ['evaluate', 'Windows at most', '4'],
  ['evaluate', 'Prefill tokens for tokens/s', '256'],
  ['evaluate', 'Decode tokens for tokens/s', '8'],
];

/** Long tasks (> 50 ms by definition) seen by the page, with their start and duration. */
async function longTasksBetween(page: Page, from: number, to: number): Promise<{ start: number; duration: number }[]> {
  return page.evaluate(([a, b]) => ((window as unknown as { __longTasks: { start: number; duration: number }[] }).__longTasks ?? []).filter((t) => t.start >= a && t.start <= b), [from, to]);
}

const now = (page: Page) => page.evaluate(() => performance.now());

/**
 * The main thread stayed responsive from `from` to `to`: no long task over 500 ms, and long tasks blocked it
 * (their time past 50 ms, the "total blocking time") for at most 2% of the interval. Engine work on the main
 * thread (tokenizing, reading back or converting arrays) blocks it for whole seconds. A bar at 100 ms was
 * noise on 2 cores, where SwiftShader's threads compete with the page's at the same priority: tasks of
 * 100–160 ms came and went between identical runs, and one of 275 ms with a second run sharing the cores.
 */
async function assertResponsive(page: Page, from: number, to: number, what: string): Promise<void> {
  const long = await longTasksBetween(page, from, to);
  const blocking = long.reduce((s, l) => s + l.duration - 50, 0);
  const detail = `${long.length} long tasks, ${Math.round(blocking)} ms blocking in ${Math.round(to - from)} ms: ${JSON.stringify(long)}`;
  assert.ok(long.every((l) => l.duration <= 500), `no long task over 500 ms during ${what}; ${detail}`);
  assert.ok(blocking <= 0.02 * (to - from), `long tasks block the main thread ≤ 2% of ${what}; ${detail}`);
}

/** Clicks a stage's button and waits for its task to end; fails with the page's error if it failed. */
async function runTask(page: Page, button: RegExp): Promise<void> {
  await page.getByRole('button', { name: button }).click();
  await page.getByTestId('task-bar').waitFor({ state: 'detached', timeout: STAGE_TIMEOUT_MS });
  const failed = page.locator('.task-error');
  if (await failed.count()) assert.fail(`${button}: ${await failed.innerText()}`);
}

/** Every chart on the page has data points. */
async function assertCharts(page: Page, ids: string[]): Promise<void> {
  for (const id of ids) {
    const chart = page.locator(`[data-chart="${id}"]`).first();
    await chart.waitFor({ timeout: 30_000 });
    const n = Number(await chart.getAttribute('data-points'));
    assert.ok(n > 0, `chart ${id} has data (data-points=${n})`);
  }
}

test('Workbench: a first visit runs LaDiMo end to end, every chart filled; the URL restores the spec; a reload resumes', { skip, timeout: 1_800_000 }, async (t) => {
  let server: ViteDevServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const log: string[] = [];
  let shot = 'workbench-failure.png';
  const tmp = mkdtempSync(join(tmpdir(), 'moefy-workbench-'));
  try {
    let url: string;
    ({ server, browser, page, url } = await startPage(t, log));
    await page.context().addInitScript(() => {
      const w = window as unknown as { __longTasks: { start: number; duration: number }[] };
      w.__longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__longTasks.push({ start: e.startTime, duration: e.duration });
      }).observe({ type: 'longtask', buffered: true });
    });
    await page.goto(url);
    await loadDemoAndBrown(page);

    // ---- the run, through the visible controls
    for (const [stage, label, value] of RUN) {
      await openStage(page, stage[0].toUpperCase() + stage.slice(1));
      await page.getByLabel(label, { exact: true }).fill(value);
    }
    // The URL follows the controls asynchronously (the spec is compressed first): wait until it settles.
    let specUrl = '';
    while (specUrl !== page.url()) {
      specUrl = page.url();
      await page.waitForTimeout(500);
    }
    assert.match(specUrl, /[?&]s=/, 'the spec is in the URL');

    // ---- the URL alone restores every control in a fresh context
    const fresh = await browser.newContext();
    const other = await fresh.newPage();
    await other.goto(specUrl.replace(/#.*$/, '#distill'));
    await other.getByRole('heading', { level: 1, name: 'Distill' }).waitFor({ timeout: 30_000 });
    await openStage(other, 'Construct');
    for (const [stage, label, value] of RUN) {
      await openStage(other, stage[0].toUpperCase() + stage.slice(1));
      assert.equal(await other.getByLabel(label, { exact: true }).inputValue(), value, `${label} restored from the URL`);
    }
    await fresh.close();

    // ---- capture, watching the main thread
    await openStage(page, 'Construct');
    let t0 = await now(page);
    await runTask(page, /Capture activations/);
    await assertResponsive(page, t0, await now(page), 'capture');
    await keepScreenshot(t, page, 'workbench-construct.png');

    // ---- distill, reloaded half-way
    await openStage(page, 'Distill');
    t0 = await now(page);
    await page.getByRole('button', { name: /Start distillation/ }).click();
    await page.locator('[data-chart="loss"][data-points]:not([data-points="0"])').waitFor({ timeout: STAGE_TIMEOUT_MS });
    // Reload once the second layer (the demo model's last) is training: the one before it is done by then.
    await page.getByTestId('task-bar').getByText(new RegExp(`layer ${LAST_LAYER}: step [1-9]`)).waitFor({ timeout: STAGE_TIMEOUT_MS });
    await assertResponsive(page, t0, await now(page), 'distillation');
    await page.reload();
    await loadDemoAndBrown(page);
    await openStage(page, 'Distill');
    await page.getByText('A distillation of this spec was interrupted').waitFor({ timeout: 30_000 });
    await runTask(page, /Resume distillation/);
    shot = 'workbench-distill.png';
    await assertCharts(page, ['loss', 'expert-load']);
    const table = await page.getByRole('table', { name: 'Distillation results' }).innerText();
    t.diagnostic(`distillation:\n${table}`);
    await keepScreenshot(t, page, shot);

    // ---- route: profile, Table 1, the classroom view
    shot = 'workbench-route.png';
    await openStage(page, 'Route');
    await runTask(page, /Profile routing/);
    await assertCharts(page, ['routing-histograms', 'policy-table']);
    await page.getByRole('radio', { name: 'Per calibration domain' }).click();
    await assertCharts(page, ['routing-histograms']);
    await page.getByRole('button', { name: 'Route text' }).click();
    const tokens = page.locator('.routed').first();
    await tokens.waitFor({ timeout: 60_000 });
    assert.ok(Number(await tokens.getAttribute('data-tokens')) > 5, 'the demo text is routed token by token');
    const layerSelect = page.getByLabel(/Policy of layer \d+/).first();
    await layerSelect.selectOption('top1');
    await assertCharts(page, ['activated-params']);
    await keepScreenshot(t, page, shot);

    // ---- evaluate and sweep
    shot = 'workbench-evaluate.png';
    await openStage(page, 'Evaluate');
    await runTask(page, /^Evaluate$/);
    const metrics = await page.getByTestId('metrics').innerText();
    t.diagnostic(`metrics:\n${metrics}`);
    assert.match(metrics, /Perplexity/);
    await runTask(page, /Sweep layers/);
    await assertCharts(page, ['accuracy-throughput', 'sensitivity']);
    await keepScreenshot(t, page, shot);

    // ---- export: the Qwen2-MoE folder's files, and the run as JSON
    shot = 'workbench-export.png';
    await openStage(page, 'Export');
    await runTask(page, /Export MoE model/);
    const files = await page.getByRole('list', { name: 'Exported files' }).innerText();
    for (const f of ['config.json', 'model.safetensors', 'moefy.json']) assert.match(files, new RegExp(f.replace('.', '\\.')));
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export run (JSON)' }).click()]);
    assert.equal(download.suggestedFilename(), 'moefy-run.json');
    // the run file imports back (spec and results)
    const runJson = join(tmp, 'moefy-run.json');
    await download.saveAs(runJson);
    await page.getByLabel('Run file').setInputFiles(runJson);
    await page.getByText(/Loaded moefy-run\.json/).waitFor({ timeout: 10_000 });
    // the storage panel lists the run's capture and checkpoints, and deletes on request
    const stored = page.getByTestId('storage').getByRole('table', { name: 'Stored items' });
    await stored.waitFor({ timeout: 30_000 });
    const rows = await stored.locator('tbody tr').count();
    assert.ok(rows >= 2, `the run's capture and checkpoint are listed (${rows} rows)`);
    await stored.getByRole('button', { name: /^Delete / }).first().click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="storage"] tbody tr').length === n - 1, rows, { timeout: 30_000 });
    await keepScreenshot(t, page, shot);

    // ---- a damaged link and one from a newer version: a clear message, and the page keeps working
    shot = 'workbench-links.png';
    for (const bad of ['s=1.z.@@not-base64@@', 's=99.j.e30']) {
      await page.goto(`${url}?${bad}#data`);
      const notice = page.getByRole('alert').filter({ hasText: 'About this link' });
      await notice.waitFor({ timeout: 30_000 });
      t.diagnostic(`${bad}: ${await notice.innerText()}`);
      if (bad.startsWith('s=99')) assert.match(await notice.innerText(), /newer/);
      await page.getByRole('heading', { level: 1, name: 'Data' }).waitFor();
    }
    assert.equal(log.filter((l) => l.startsWith('[pageerror]')).length, 0, `no page errors:\n${log.join('\n')}`);
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
