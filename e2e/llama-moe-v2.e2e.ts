// End to end, LLaMA-MoE v2 in the browser as a shared link opens it: a spec with method 'llama-moe-v2' in
// the URL (the demo model's last 2 layers with a residual MLP MoE and an attention MoE, 2 + 2 post-training
// steps on two Brown genres, the constructions compared), the demo model and the Brown Corpus. The run fills
// the cards, the perplexity table, the loss curves by stage, the expert load and the comparison; a reload finds the 4 constructions stored and
// running again reads them back to the same table. Screenshot: e2e/artifacts/v2-*.png.
//
//   node scripts/test.mjs e2e/llama-moe-v2.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { e2eSkip, keepScreenshot, loadDemoAndBrown, onPage, openStage, specLink, tableCells, waitTaskDone } from './harness.ts';

const TASK_TIMEOUT_MS = 400_000;
const SPEC = {
  method: 'llama-moe-v2',
  'construct.layers': 'last:2', 'calibration.domains': 'brown-news,brown-fiction', 'calibration.tokens': 256,
  'v2.experts': 4, 'v2.routerTokens': 128, 'v2.stage1Domains': 'brown-news', 'v2.stage2Domains': 'brown-fiction',
  'v2.stage1Steps': 2, 'v2.stage2Steps': 2, 'v2.evalWindows': 1, 'v2.compare': true, 'v2.attention': true, 'v2.attentionTopK': 1,
  'train.seqLen': 32, 'train.batchTokens': 32, 'train.evalEvery': 0, 'train.logEvery': 1,
  'eval.window': 32, 'eval.maxWindows': 1, 'eval.throughputTokens': 32, 'eval.decodeTokens': 2,
};

const skip = e2eSkip();
const table = (page: Page) => tableCells(page, '.v2-table');

test('LLaMA-MoE v2: a shared spec converts, post-trains in two stages and compares constructions in the tab; a reload reads the stored constructions back', { skip, timeout: 900_000 }, async (t) => {
  await onPage(t, 'v2', async (page, url) => {
    const link = specLink(url, SPEC);
    await page.goto(link);
    await loadDemoAndBrown(page);
    assert.deepEqual(await page.locator('.stages .nav-name').allInnerTexts(), ['Model', 'Data', 'LLaMA-MoE v2']);
    await openStage(page, 'LLaMA-MoE v2');

    let t0 = Date.now();
    await page.getByRole('button', { name: /^Run LLaMA-MoE v2/ }).click();
    await waitTaskDone(page, 'v2-results', TASK_TIMEOUT_MS);
    t.diagnostic(`run: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const first = await table(page);
    assert.deepEqual(first.map((r) => r[0]), ['brown-news', 'brown-fiction']);
    for (const row of first) {
      assert.equal(row.length, 6, `domain, dense, 3 scorings, agreement: ${row}`);
      for (const c of row.slice(1, 5)) assert.ok(Number(c) > 1, `a perplexity: '${c}' in ${row}`);
    }
    assert.ok(Number(await page.locator('[data-chart="stage-loss"]').getAttribute('data-points')) >= 4, 'the loss curves of both stages');
    // the demo model (dim 128, 4 heads, 2 KV heads of 32): top-1 of 2 groups activates ½·q/o + k/v + router = 33,024 of 49,152
    assert.match((await page.getByTestId('v2-cards').textContent()) ?? '', /Activated attention\s*67\.2%/);
    const compared = await tableCells(page, '[aria-label="LLaMA-MoE v2 constructions compared"]');
    assert.deepEqual(compared.map((r) => [r[0], r[2]]), [
      ['residual, hidden-kmeans routers, top-2 of 4, attention top-1', '67.2%'],
      ['vanilla, hidden-kmeans routers, top-3 of 4, attention top-1', '67.2%'],
      ['residual, random routers, top-2 of 4, attention top-1', '67.2%'],
      ['residual, hidden-kmeans routers, top-2 of 4', 'dense'],
    ]);
    // one sentence per compared construction, the spec's against it
    const verdicts = await page.getByRole('list', { name: 'LLaMA-MoE v2 verdicts' }).locator('li').allInnerTexts();
    assert.deepEqual(verdicts.map((v) => v.split(':')[0]), [
      'residual vs vanilla MLP MoE (62.5% vs 75.0% of the MLP active)', 'hidden-kmeans vs random routers', 'attention MoE top-1 vs dense attention (67.2% vs 100.0% of attention active)',
    ]);
    assert.equal(await page.locator('[data-chart="expert-load"]').getAttribute('data-points'), '8', 'expert load: 2 layers × 4 experts');
    assert.equal(await page.locator('[data-chart="attention-load"]').getAttribute('data-points'), '4', 'head-group load: 2 layers × 2 KV head groups');
    await keepScreenshot(t, page, 'v2-results.png');

    // ---- a reload: the constructions are stored, and read back to the same numbers
    await page.goto(link);
    await loadDemoAndBrown(page);
    await openStage(page, 'LLaMA-MoE v2');
    await page.getByText('4 finished constructions are in this browser\'s storage').waitFor({ timeout: 30_000 });
    t0 = Date.now();
    await page.getByRole('button', { name: 'Run LLaMA-MoE v2 (resume)' }).click();
    await waitTaskDone(page, 'v2-results', TASK_TIMEOUT_MS);
    t.diagnostic(`read back: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    assert.deepEqual(await table(page), first);
  });
});
