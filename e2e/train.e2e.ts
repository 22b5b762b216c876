// End to end, as a first-time visitor training the whole model: load stories260K through "Choose files…",
// pick the built-in Brown Corpus, switch the method to whole-model training (the sidebar becomes Model →
// Data → Train), set a tiny budget with the Train page's controls, start, watch the charts fill, reload
// mid-run, resume from the stored snapshot, Cancel and resume again, see the held-out loss fall, and
// delete the stored run; switching the method back restores the LaDiMo stages. Screenshots go to
// e2e/artifacts/train-*.png.
//
//   node scripts/test.mjs e2e/train.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { FIELDS, type Field, type SpecKey } from '../src/state/spec.ts';
import { e2eSkip, keepScreenshot, openStage, startPage, useBrownCorpus } from './harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const STORIES = join(root, '..', 'shared', 'models', 'stories260K');
const MODEL = join(STORIES, 'stories260K.bin');
const TOKENIZER = join(STORIES, 'tok512.bin');
const TASK_TIMEOUT_MS = 300_000;

const skip = e2eSkip({ [MODEL]: 'the test models (../shared/models from the repo root)', [TOKENIZER]: 'the test models (../shared/models from the repo root)' });

const STEPS = 24;
const EVAL_EVERY = 8;
const SNAPSHOT_EVERY = 4;
/** The page reloads once training has passed this step (a snapshot and a held-out reading behind it). */
const RELOAD_AFTER = 8;

/** The tiny budget: one Brown genre, 24 steps of one 32-token sequence. */
const BUDGET: [SpecKey, string][] = [
  ['train.steps', String(STEPS)],
  ['train.seqLen', '32'],
  ['train.batchTokens', '32'],
  ['train.lr', '0.002'],
  ['train.domains', 'brown-news'],
  ['train.evalEvery', String(EVAL_EVERY)],
  ['eval.maxWindows', '4'],
  ['train.logEvery', '2'],
  ['train.checkpointEvery', String(SNAPSHOT_EVERY)],
];

/** A control's label, from the spec table the form is generated from. */
const label = (k: SpecKey) => (FIELDS as readonly Field[]).find((f) => f.key === k)!.label;

async function loadModelAndData(page: Page): Promise<void> {
  await openStage(page, 'Model');
  // Once the engine reports its GPU, the page may start loading its demo model, which hides the file
  // picker while it loads: choose the files after that load, then wait for stories260K by name.
  await page.locator('.header .badge', { hasText: 'WebGPU ·' }).waitFor({ timeout: 60_000 });
  await page.waitForFunction(() => document.querySelector('[data-model-status]')?.getAttribute('data-model-status') !== 'loading', undefined, { timeout: 120_000, polling: 250 });
  await page.getByLabel('Choose files…').setInputFiles([MODEL, TOKENIZER]);
  await page.waitForFunction(
    () => {
      const status = document.querySelector('[data-model-status]')?.getAttribute('data-model-status');
      return status === 'error' || (status === 'ready' && document.querySelector('main')!.textContent!.includes('stories260K.bin'));
    },
    undefined,
    { timeout: 120_000, polling: 250 },
  );
  assert.equal(await page.locator('[data-model-status]').getAttribute('data-model-status'), 'ready', `stories260K loads: ${await page.locator('[data-model-status]').innerText()}`);
  await useBrownCorpus(page);
}

/** Waits until the task bar reports a step past `step`. */
async function pastStep(page: Page, step: number): Promise<void> {
  await page.waitForFunction(
    (after) => Number(/step (\d+)\//.exec(document.querySelector('[data-testid="task-bar"] .load-sub')?.textContent ?? '')?.[1] ?? 0) >= after,
    step,
    { timeout: TASK_TIMEOUT_MS, polling: 250 },
  );
}

/** The sidebar's stage names, in order. */
async function stageNames(page: Page): Promise<string[]> {
  return page.locator('.stages .nav-name').allInnerTexts();
}

async function chartPoints(page: Page, id: string): Promise<number> {
  return Number(await page.locator(`[data-chart="${id}"]`).getAttribute('data-points'));
}

/** The results card `name`'s value, e.g. 'Held-out loss' → '4.440 → 4.150'. */
async function card(page: Page, name: string): Promise<string> {
  return page.getByTestId('train-results').locator('.stat').filter({ hasText: name }).locator('.stat-value').innerText();
}

test('Train: a first visit trains stories260K on Brown news, the charts fill live, a reload and Cancel resume, the held-out loss falls', { skip, timeout: 600_000 }, async (t) => {
  let server: ViteDevServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const log: string[] = [];
  let shot = 'train-failure.png';
  const t0 = Date.now();
  try {
    let url: string;
    ({ server, browser, page, url } = await startPage(t, log));
    await page.goto(url);
    await loadModelAndData(page);

    // ---- the method: the sidebar becomes Model → Data → Train
    assert.ok((await stageNames(page)).includes('Construct'), 'LaDiMo stages by default');
    await page.getByLabel('Method').selectOption('train');
    assert.deepEqual(await stageNames(page), ['Model', 'Data', 'Train'], 'method train: its stages only');
    await openStage(page, 'Train');
    for (const [k, v] of BUDGET) await page.getByLabel(label(k), { exact: true }).fill(v);
    // the URL follows the controls asynchronously (compressed first): the reload below must find the spec there
    let specUrl = '';
    while (specUrl !== page.url()) {
      specUrl = page.url();
      await page.waitForTimeout(500);
    }

    // ---- start, and watch the charts fill
    await page.getByRole('button', { name: 'Start training' }).click();
    const bar = page.getByTestId('task-bar');
    await pastStep(page, RELOAD_AFTER);
    await page.locator('[data-chart="train-loss"]:not([data-points="0"])').waitFor({ timeout: 10_000 });
    const live: Record<string, number> = {};
    for (const id of ['train-loss', 'train-lr', 'train-grad-norm', 'train-throughput']) {
      live[id] = await chartPoints(page, id);
      assert.ok(live[id] > 0, `chart ${id} has data while training (data-points=${live[id]})`);
    }
    t.diagnostic(`live points at ${await bar.locator('.load-sub').innerText()}: ${JSON.stringify(live)}`);
    await keepScreenshot(t, page, 'train-running.png');

    // ---- reload mid-run: the stored snapshot is offered and resumed
    await page.reload();
    await loadModelAndData(page);
    assert.deepEqual(await stageNames(page), ['Model', 'Data', 'Train'], 'the method survives the reload (it is in the URL)');
    await openStage(page, 'Train');
    await page.getByText('A training run of this spec was interrupted').waitFor({ timeout: 30_000 });
    const resume = page.getByRole('button', { name: /Resume training from step \d+/ });
    const from = Number(/step (\d+)/.exec(await resume.innerText())![1]);
    assert.ok(from >= RELOAD_AFTER && from < STEPS && from % SNAPSHOT_EVERY === 0, `resumes from a snapshot (every ${SNAPSHOT_EVERY} steps), got step ${from}`);
    await resume.click();

    // ---- Cancel a few steps later: a snapshot is taken where it stopped, and resumed from
    await pastStep(page, from + 4);
    await bar.getByRole('button', { name: 'Cancel' }).click();
    await page.getByText('Cancelled', { exact: true }).waitFor({ timeout: TASK_TIMEOUT_MS });
    const again = page.getByRole('button', { name: /Resume training from step \d+/ });
    await again.waitFor({ timeout: 30_000 });
    const cancelledAt = Number(/step (\d+)/.exec(await again.innerText())![1]);
    assert.ok(cancelledAt >= from + 4 && cancelledAt < STEPS, `Cancel keeps a snapshot where it stopped (step ${cancelledAt}, resumed from ${from})`);
    await again.click();
    await bar.waitFor({ timeout: 30_000 });
    await bar.waitFor({ state: 'detached', timeout: TASK_TIMEOUT_MS });
    const failed = page.locator('.task-error');
    if (await failed.count()) assert.fail(`training: ${await failed.innerText()}`);

    // ---- results: resumed, every step on the charts, the held-out loss lower
    shot = 'train-done.png';
    await page.getByTestId('train-results').waitFor({ timeout: 10_000 });
    t.diagnostic(`results:\n${await page.getByTestId('train-results').innerText()}`);
    assert.equal(await card(page, 'Resumed from'), `step ${cancelledAt}`);
    assert.equal(await card(page, 'Steps'), String(STEPS));
    const [before, after] = (await card(page, 'Held-out loss')).split('→').map(Number);
    assert.ok(after < before, `held-out loss falls: ${before} → ${after}`);
    const readings = STEPS / EVAL_EVERY + 1;
    assert.equal(await chartPoints(page, 'train-loss'), STEPS + readings, `the loss chart: ${STEPS} steps and ${readings} held-out readings`);
    assert.equal(await chartPoints(page, 'train-lr'), STEPS);
    assert.ok((await chartPoints(page, 'train-throughput')) > 0, 'tokens/s of the resumed session');
    // the charts download: the loss chart's CSV holds both series
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download Training loss as CSV' }).click()]);
    assert.equal(download.suggestedFilename(), 'moefy-train-loss.csv');
    const csv = readFileSync((await download.path())!, 'utf8');
    assert.match(csv, /^series,step,loss,perplexity\r\n/);
    assert.equal(csv.split('\r\n').filter((l) => l.startsWith('held-out,')).length, readings);
    await keepScreenshot(t, page, shot);

    // ---- the same spec trains the same way: what is offered is deleting the stored run, after which it starts afresh
    await page.getByRole('button', { name: 'Delete the stored run' }).click();
    await page.getByRole('button', { name: 'Start training' }).waitFor({ timeout: 30_000 });

    // ---- switching back restores the LaDiMo stages
    shot = 'train-ladimo.png';
    await page.getByLabel('Method').selectOption('ladimo');
    await page.getByRole('heading', { level: 1, name: 'Construct' }).waitFor({ timeout: 10_000 });
    assert.deepEqual(await stageNames(page), ['Model', 'Data', 'Construct', 'Distill', 'Route', 'Evaluate', 'Export']);
    assert.equal(log.filter((l) => l.startsWith('[pageerror]')).length, 0, `no page errors:\n${log.join('\n')}`);
    t.diagnostic(`took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } catch (e) {
    if (log.length) t.diagnostic(`browser console:\n${log.join('\n')}`);
    throw e;
  } finally {
    await keepScreenshot(t, page, shot);
    await browser?.close().catch(() => {});
    await server?.close().catch(() => {});
  }
});
