import type { Report } from '../src/contracts';
import { renderHtml } from '../src/report/html';
import { notificationSubject, notificationText, summary, vendorSummary } from '../src/report/texts';

/** A run that completed with rejections of three codes. */
function reportWithRejections(): Report {
  return {
    runId: 'run-1',
    dataflow: 'weekly-events',
    status: 'COMPLETED_WITH_REJECTIONS',
    dryRun: false,
    startedAt: '2026-11-29T10:00:00.000Z',
    finishedAt: '2026-11-29T10:00:05.000Z',
    durationMs: 5000,
    rows: { total: 40, valid: 36, accepted: 34, rejected: 6 },
    rejectionsByCode: { INVALID_DATE: 1, '1054': 3, RETRIES_EXHAUSTED: 2 },
    rejectedByStage: { validate: 1, api: 5 },
    files: [{ name: 'events.csv', status: 'COMPLETED_WITH_REJECTIONS', rows: { total: 40, accepted: 34, rejected: 6 }, rejectedFile: 'events.rejected.csv', source: { bucket: 'inbox', key: 'events.csv' } }],
  };
}

describe('Module: report texts', () => {
  it('say the same numbers and list the codes most frequent first in every text', () => {
    // Prepare
    const report = reportWithRejections();

    // Act
    const texts = { cli: summary(report, 'out/report.json', 'out/events.rejected.csv'), notification: notificationText(report), vendor: vendorSummary(report, 'events.csv', 'result_events.rejected.csv') };

    // Assess
    expect(texts.cli).toContain('records 40: 34 accepted, 6 rejected (1054 3, RETRIES_EXHAUSTED 2, INVALID_DATE 1)');
    for (const text of [texts.notification, texts.vendor]) {
      expect(text).toContain('Records:   40 read, 34 accepted, 6 rejected');
      expect(text).toMatch(/ {2}1054: 3\n {2}RETRIES_EXHAUSTED: 2\n {2}INVALID_DATE: 1\n/);
    }
    expect(notificationSubject(report)).toBe('[badges-import] weekly-events: events.csv COMPLETED_WITH_REJECTIONS (6 of 40 rejected)');
  });

  it('tell the operator how to replay and the vendor only what to deliver', () => {
    // Act
    const report = reportWithRejections();
    const operator = notificationText(report);
    const vendor = vendorSummary(report, 'events.csv', undefined);

    // Assess
    expect(operator).toMatch(/What to do: Do NOT deliver this file again.*badges-import replay/);
    expect(vendor).not.toMatch(/badges-import|run-1 \(|s3:\/\//);
    expect(vendor).toMatch(/Do not deliver this file again/);
  });
});

/** The run above, had its dataflow's filter left 10 more records out (50 read). */
function reportWithFiltered(): Report {
  const report = reportWithRejections();
  return {
    ...report,
    rows: { ...report.rows, total: 50, filtered: 10 },
    files: [{ ...report.files[0]!, rows: { total: 50, accepted: 34, rejected: 6, filtered: 10 }, filteredFile: 'events.filtered.csv' }],
  };
}

describe('Module: report texts, with a filter', () => {
  it('say how many records the filter left out, so that every text adds up to the records read', () => {
    // Prepare
    const report = reportWithFiltered();

    // Act
    const texts = { cli: summary(report, 'out/report.json', 'out/events.rejected.csv', 'out/events.filtered.csv'), notification: notificationText(report), vendor: vendorSummary(report, 'events.csv', undefined) };

    // Assess
    expect(texts.cli).toContain('records 50: 34 accepted, 6 rejected (1054 3, RETRIES_EXHAUSTED 2, INVALID_DATE 1), 10 filtered\n');
    expect(texts.cli).toMatch(/ {2}rejected out\/events\.rejected\.csv\n {2}filtered out\/events\.filtered\.csv\n$/);
    for (const text of [texts.notification, texts.vendor]) expect(text).toContain('Records:   50 read, 34 accepted, 6 rejected, 10 filtered\n');
    expect(texts.notification).toContain('Filtered records: events.filtered.csv\n');
    expect(texts.vendor).toContain("10 records were left out by the dataflow's filter: neither sent nor rejected.\n");
    expect(texts.vendor).not.toContain('events.filtered.csv');
  });

  it('say nothing of a filter when none left a record out (or the report predates filters)', () => {
    // Prepare
    const none = { ...reportWithRejections(), rows: { ...reportWithRejections().rows, filtered: 0 } };
    const old = reportWithRejections();

    // Act
    const texts = [none, old].flatMap((report) => [summary(report, 'out/report.json'), notificationText(report), vendorSummary(report, 'events.csv', undefined)]);

    // Assess
    for (const text of texts) expect(text).not.toMatch(/filter/i);
  });

  it('show a dry run\'s valid, rejected and filtered records', () => {
    // Prepare
    const report: Report = { ...reportWithFiltered(), dryRun: true, rows: { total: 50, valid: 36, accepted: 0, rejected: 4, filtered: 10 }, rejectionsByCode: { INVALID_DATE: 4 } };

    // Act
    const text = summary(report, 'out/report.json');

    // Assess
    expect(text).toContain('(dry run: nothing sent)');
    expect(text).toContain('records 50: 36 valid, 4 rejected (INVALID_DATE 4), 10 filtered\n');
  });
});

describe('Function: renderHtml, with a filter', () => {
  it('draws a filtered bar only for a file the filter left records out of, and the bars add up to the records read', () => {
    // Prepare
    const bars = (html: string) => [...html.matchAll(/<rect class="bar" data-label="([^"]+)" data-value="(\d+)"/g)].map((m) => [m[1], Number(m[2])] as const);

    // Act
    const filtered = renderHtml(reportWithFiltered());
    const plain = renderHtml(reportWithRejections());

    // Assess
    const outcomes = bars(filtered).slice(0, 4);
    expect(outcomes).toEqual([
      ['accepted', 34],
      ['rejected (validation)', 1],
      ['rejected (API)', 5],
      ['filtered', 10],
    ]);
    expect(outcomes.reduce((a, [, n]) => a + n, 0)).toBe(50);
    expect(filtered).toContain('<dt>Records</dt><dd>50 read, 34 accepted, 6 rejected, 10 filtered</dd>');
    expect(filtered).toContain('<dt>Filtered records</dt><dd>events.filtered.csv</dd>');
    expect(bars(plain).map(([label]) => label)).not.toContain('filtered');
    expect(plain).not.toMatch(/filtered/i);
  });
});
