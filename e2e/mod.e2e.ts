// End to end, Mixture-of-Depths ensemble tuning in the browser as a shared link opens it: a spec with
// method 'mod' in the URL (the demo model's 2 late layers before the final one, the four variants, 2
// steps each on the built-in arithmetic generator, 3 problems scored, prose from the Brown Corpus). The
// run fills the comparison with its parameter counts and verdicts, the loss curves, the routing analysis
// (tokens coloured by the layer with the most weight, means per token type) and the greedy answers; a
// reload finds the 4 variants stored and running again reads them back to the same table; a results file
// made with another spec says which fields differ and takes them on request. Screenshot:
// e2e/artifacts/mod-results.png.
//
//   node scripts/test.mjs e2e/mod.e2e.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { e2eSkip, keepScreenshot, loadDemoAndBrown, onPage, openStage, specLink, tableCells, waitTaskDone } from './harness.ts';

const TASK_TIMEOUT_MS = 400_000;
const SPEC = {
  method: 'mod',
  'mod.k': 2, 'mod.problems': 'builtin', 'mod.evalProblems': 3,
  'train.steps': 2, 'train.seqLen': 32, 'train.batchTokens': 32, 'train.evalEvery': 0, 'train.logEvery': 1, 'train.lora.rank': 8,
  'eval.domain': 'brown-news', 'eval.window': 32, 'eval.maxWindows': 1,
};

const skip = e2eSkip();
const table = (page: Page) => tableCells(page, '[aria-label="Mixture-of-Depths variants compared"]');

test('Mixture-of-Depths: a shared spec tunes and scores the four variants in the tab and shows where the router puts its weight; a reload reads the stored variants back', { skip, timeout: 900_000 }, async (t) => {
  await onPage(t, 'mod', async (page, url) => {
    const link = specLink(url, SPEC);
    await page.goto(link);
    await loadDemoAndBrown(page);
    assert.deepEqual(await page.locator('.stages .nav-name').allInnerTexts(), ['Model', 'Data', 'Mixture-of-Depths']);
    await openStage(page, 'Mixture-of-Depths');

    let t0 = Date.now();
    await page.getByRole('button', { name: /^Run the comparison/ }).click();
    await waitTaskDone(page, 'mod-results', TASK_TIMEOUT_MS);
    t.diagnostic(`run: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    const first = await table(page);
    // the demo model (dim 128, 4 layers, q_proj [128, 128], v_proj [64, 128]): LoRA r 8 trains 4 · 8 · (256 + 192) = 14,336;
    // MoD with k 2 trains 2 norms [128], W_g [3, 128] and its bias [3]: 643
    assert.deepEqual(first.map((r) => [r[0], r[1]]), [['the base model', '0'], ['LoRA alone', '14.3K'], ['MoD alone', '643'], ['MoD + LoRA', '15K']]);
    for (const row of first) {
      assert.match(row[2], /^[0-3]\/3 \(\d+\.\d%\)$/, `exact match: ${row}`);
      assert.ok(Number(row[4]) > 1, `a prose perplexity: ${row}`);
    }
    assert.match((await page.getByTestId('mod-cards').textContent()) ?? '', /MoD trains\s*643\s*parameters: 4\.5% of LoRA's/);
    // one sentence per MoD variant and reference, whichever way it went
    const verdicts = await page.getByRole('list', { name: 'Mixture-of-Depths verdicts' }).locator('li').allInnerTexts();
    const pairs = verdicts.map((v) => /^(MoD alone|MoD \+ LoRA) (?:beats|ties with|falls behind) (the base model|LoRA alone): exact match /.exec(v)?.slice(1).join(' vs ') ?? v);
    assert.deepEqual(pairs, ['MoD alone vs the base model', 'MoD alone vs LoRA alone', 'MoD + LoRA vs the base model', 'MoD + LoRA vs LoRA alone']);
    assert.ok(Number(await page.locator('[data-chart="variant-loss"]').getAttribute('data-points')) >= 6, 'the loss curves of 3 trained variants');
    for (const v of ['mod', 'mod+lora']) {
      const panel = page.getByTestId(`mod-routing-${v}`);
      assert.deepEqual((await panel.locator('.mod-legend span').allInnerTexts()).map((s) => s.trim()), ['final', 'layer 1', 'layer 2']);
      assert.ok(Number(await panel.locator('.routed').getAttribute('data-tokens')) > 10, 'the first problem token by token');
      const types = await panel.locator('.mod-types tbody tr td:first-child').allInnerTexts();
      for (const type of ['digits', 'operators', 'words']) assert.ok(types.includes(type), `${v}: a row for ${type} in ${types}`);
    }
    assert.equal((await tableCells(page, '[aria-label="Greedy answers by variant"]')).length, 3);
    await keepScreenshot(t, page, 'mod-results.png');

    // ---- a reload: the variants are stored, and read back to the same numbers
    await page.goto(link);
    await loadDemoAndBrown(page);
    await openStage(page, 'Mixture-of-Depths');
    await page.getByText("4 finished variants are in this browser's storage").waitFor({ timeout: 30_000 });
    t0 = Date.now();
    await page.getByRole('button', { name: 'Run the comparison (resume)' }).click();
    await waitTaskDone(page, 'mod-results', TASK_TIMEOUT_MS);
    t.diagnostic(`read back: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    assert.deepEqual((await table(page)).map((r) => r.slice(0, 5)), first.map((r) => r.slice(0, 5)));

    // ---- a results file made elsewhere with more steps: shown, its spec compared with the panels', taken on request
    const dir = mkdtempSync(join(tmpdir(), 'moefy-mod-e2e-'));
    try {
      const file = join(dir, 'mod-run.json');
      const variant = { variant: 'base', params: { total: 1, trainable: 0 }, accuracy: 0.25, correct: 1, scored: 4, ppl_prose: 40, tokens_per_s: 9, train: null, samples: [], routing: null, eval_seconds: 1 };
      const metrics = { device: 'elsewhere', k: 2, mix: 'prob', lambda: 0.5, layers: [1, 2], problems: { source: 'x', train_tokens: 10, scored: 4 }, prose: { domain: 'brown-news', windows: 1, tokens: 31 }, variants: [variant], mod_share_of_lora_params: null, accuracy_gain: {} };
      writeFileSync(file, JSON.stringify({ spec: { ...SPEC, 'train.steps': 60, model: '/srv/7m' }, metrics }));
      await page.getByLabel('the comparison results file').setInputFiles(file);
      const note = page.getByTestId('file-spec');
      await note.getByText('train.steps 60 (above: 2)').waitFor({ timeout: 10_000 });
      assert.equal((await table(page)).length, 1);
      await note.getByRole('button', { name: "Use the file's spec" }).click();
      await note.waitFor({ state: 'detached', timeout: 10_000 });
      // the field shows the file's value once its input has synced (an effect after the render that drops the note)
      const steps = page.getByLabel('Steps', { exact: true });
      await page.waitForFunction((el) => (el as HTMLInputElement).value === '60', await steps.elementHandle(), { timeout: 10_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
