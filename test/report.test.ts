import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import type { Report } from '../src/contracts';
import { launchChromium } from './support/chromium';
import { runCli } from './support/cli';

const work = mkdtempSync(join(tmpdir(), 'report-'));
let browser: Browser;
beforeAll(async () => {
  browser = await launchChromium();
}, 60_000);
afterAll(() => browser?.close());

describe('CLI: badges-import report', () => {
  it('renders the demo run as a summary and as an HTML page that Chromium shows with its charts and rejected records', async () => {
    // Prepare: the demo run (the example file, with its bad rows on purpose).
    const out = join(work, 'demo');
    expect((await runCli(['demo', '--out', out])).code).toBe(0);
    const reportPath = join(out, 'report.json');
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as Report;
    const html = join(work, 'demo.html');

    // Act
    const printed = await runCli(['report', reportPath, '--html', html, '--rows', '5']);

    // Assess: the summary.
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain(`${report.dataflow}: ${report.files[0]!.name} — COMPLETED_WITH_REJECTIONS`);
    expect(printed.stdout).toContain(`records ${report.rows.total}: ${report.rows.accepted} accepted, ${report.rows.rejected} rejected`);
    // Assess: the page as Chromium lays it out.
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(pathToFileURL(html).href);
    expect(await page.textContent('#status')).toBe('COMPLETED_WITH_REJECTIONS');
    const bars = await page.$$eval('#outcomes rect.bar', (rects) => rects.map((r) => ({ label: r.getAttribute('data-label'), value: Number(r.getAttribute('data-value')), width: r.getBoundingClientRect().width })));
    expect(bars.map((b) => [b.label, b.value])).toEqual([
      ['accepted', report.rows.accepted],
      ['rejected (validation)', report.rejectedByStage!.validate],
      ['rejected (API)', report.rejectedByStage!.api],
    ]);
    expect(bars.every((b) => b.width > 0)).toBe(true);
    expect(bars[0]!.width).toBeGreaterThan(bars[1]!.width);
    const codes = await page.$$eval('#codes rect.bar', (rects) => rects.map((r) => [r.getAttribute('data-label'), Number(r.getAttribute('data-value'))]));
    expect(Object.fromEntries(codes)).toEqual(report.rejectionsByCode);
    expect(await page.locator('#rejected tbody tr').count()).toBe(5);
    const header = await page.locator('#rejected thead th').allTextContents();
    expect(header.slice(-4)).toEqual(['_row', '_stage', '_error_code', '_error_message']);
    const messages = await page.locator(`#rejected tbody td:nth-child(${header.length})`).allTextContents();
    expect(messages).toHaveLength(5);
    expect(messages.every((m) => m.length > 0)).toBe(true);
    expect(await page.locator('#rejected').isVisible()).toBe(true);
    expect(await page.textContent('h2')).toBe(`Rejected records (the first 5 of ${report.rows.rejected})`);
    await page.screenshot({ path: join(work, 'demo.png'), fullPage: true });
    await page.close();
  }, 120_000);

  it('says when a file is not a report', async () => {
    const notReport = join(work, 'x.json');
    writeFileSync(notReport, '{"hello": 1}');
    const result = await runCli(['report', notReport]);
    expect(result.code).toBe(2);
  });
});
