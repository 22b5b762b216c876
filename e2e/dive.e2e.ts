// End to end, DIVE in the browser as a shared link opens it: a spec with method 'dive' in the URL (three
// Brown genres, 2 experts, k = 1, a few retraining steps), the demo model and the Brown Corpus. The run
// fills the verdicts, the affinity heatmap with its dendrogram, the perplexity table and the routing
// heatmap. Then the stored run is deleted and run again, the page reloaded part-way: the resumed run
// must end with exactly the first run's table (pieces read back, the rest recomputed with the same seeds).
// A file that is not a DIVE result is refused with its name. Screenshots: e2e/artifacts/dive-*.png.
//
//   node scripts/test.mjs e2e/dive.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { e2eSkip, keepScreenshot, loadDemoAndBrown, onPage, openStage, specLink, tableCells, waitTaskDone } from './harness.ts';

const TASK_TIMEOUT_MS = 400_000;
const DOMAINS = ['brown-news', 'brown-fiction', 'brown-humor'];
const SPEC = {
  method: 'dive',
  'calibration.domains': DOMAINS.join(','),
  'dive.experts': 2, 'dive.topK': '1', 'dive.temperature': '0.05', 'dive.calibTokens': 64, 'dive.evalWindows': 1,
  'dive.stage1Steps': 2, 'dive.stage2Steps': 2, 'dive.loraRank': 2,
  'train.seqLen': 32, 'train.batchTokens': 32, 'train.evalEvery': 0, 'train.logEvery': 1, 'eval.maxWindows': 1, 'eval.window': 32,
};
/** 3 domains' statistics, 3 affinity rows, 5 models (dense, FLAP, DIVE, DIVE w/o mining, random split) */
const PIECES = 11;
/** the reload comes once the affinity rows are stored */
const RELOAD_AFTER = 6;

const skip = e2eSkip();

const table = (page: Page) => tableCells(page, '.dive-table');
const waitDone = (page: Page) => waitTaskDone(page, 'dive-results', TASK_TIMEOUT_MS);

async function piecesDone(page: Page): Promise<number> {
  return Number(/^(\d+) \//.exec(await page.locator('.progress-line .mono').innerText().catch(() => ''))?.[1] ?? 0);
}

test('DIVE: a shared spec runs in the tab, fills its charts and table, and a run reloaded part-way resumes to the same numbers', { skip, timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'moefy-dive-e2e-'));
  try {
    await onPage(t, 'dive', async (page, url) => {
      const link = specLink(url, SPEC);
      await page.goto(link);
      await loadDemoAndBrown(page);
      assert.deepEqual(await page.locator('.stages .nav-name').allInnerTexts(), ['Model', 'Data', 'DIVE'], "method 'dive' from the link: its stages");
      await openStage(page, 'DIVE');

      // ---- a first run, start to end
      let t0 = Date.now();
      await page.getByRole('button', { name: /^Run DIVE/ }).click();
      await waitDone(page);
      t.diagnostic(`first run: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      const verdicts = await page.locator('.verdicts li').allInnerTexts();
      assert.equal(verdicts.length, 3, `DIVE 1/2 against FLAP, random split and DIVE without mining: ${verdicts.join(' | ')}`);
      for (const v of verdicts) assert.match(v, /^DIVE 1\/2 (beats|trails|ties) .* \(perplexity [\d.]+ vs [\d.]+, lower on \d of 3 domains\), both retrained$/);
      assert.equal(await page.locator('[data-chart="affinity"]').getAttribute('data-points'), '9', 'a 3×3 affinity matrix');
      assert.equal(await page.locator('[data-chart="affinity"] svg.heatmap path').count(), 2, 'the dendrogram: 2 merges of 3 domains');
      assert.equal(await page.locator('[data-chart="dive-routing"]').getAttribute('data-points'), '6', 'routing: 3 domains × 2 experts');
      const first = await table(page);
      assert.deepEqual(first.map((r) => r[0]), ['dense', 'FLAP 50%', 'DIVE 1/2', 'DIVE w/o affinity mining 1/2', 'random split (LLaMA-MoE) 1/2']);
      for (const row of first) for (const c of row.slice(2)) assert.ok(Number(c) > 1, `a perplexity in ${row.join(' ')}: '${c}'`);
      await keepScreenshot(t, page, 'dive-results.png');

      // ---- the stored run deleted, run again, reloaded part-way, resumed
      await page.getByRole('button', { name: 'Delete the stored run' }).click();
      await page.getByRole('button', { name: 'Delete the stored run' }).waitFor({ state: 'detached', timeout: 10_000 });
      await page.getByRole('button', { name: /^Run DIVE/ }).click();
      await page.waitForFunction(
        (n) => Number(/^(\d+) \//.exec(document.querySelector('.progress-line .mono')?.textContent ?? '')?.[1] ?? 0) >= n,
        RELOAD_AFTER,
        { timeout: TASK_TIMEOUT_MS, polling: 250 },
      );
      const before = await piecesDone(page);
      await page.goto(link);
      await loadDemoAndBrown(page);
      await openStage(page, 'DIVE');
      const offer = page.getByText(/\d+ finished pieces are in this browser's storage/);
      await offer.waitFor({ timeout: 30_000 });
      const stored = Number(/(\d+) finished pieces/.exec(await offer.innerText())![1]);
      assert.ok(stored >= RELOAD_AFTER - 3 && stored < PIECES - 3, `part of the run is stored: ${stored} pieces (statistics are not stored; ${before} of ${PIECES} were done)`);
      t0 = Date.now();
      await page.getByRole('button', { name: 'Run DIVE (resume)' }).click();
      await waitDone(page);
      t.diagnostic(`resumed from ${stored} stored pieces: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      assert.deepEqual(await table(page), first, 'the resumed run gives the uninterrupted run\'s table');

      // ---- a file that is not a DIVE result
      const bad = join(dir, 'not-dive.json');
      writeFileSync(bad, JSON.stringify({ spec: { method: 'train' }, metrics: {} }));
      await page.getByLabel('DIVE results file').setInputFiles(bad);
      await page.getByRole('alert').filter({ hasText: "not-dive.json: spec.method is \"train\"; this page shows runs of method 'dive'" }).waitFor({ timeout: 10_000 });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
