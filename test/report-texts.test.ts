import type { Report } from '../src/contracts';
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
