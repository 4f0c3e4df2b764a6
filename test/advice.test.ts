import type { Report } from '../src/contracts';
import { adviceFor } from '../src/report/advice';

/** A finished run's report, with only what the advice reads. */
function reportOf(extra: Partial<Report>): Report {
  return {
    runId: 'r2',
    dataflow: 'weekly-events',
    status: 'SUCCEEDED',
    dryRun: false,
    startedAt: '2026-11-29T20:00:00.000Z',
    finishedAt: '2026-11-29T20:00:01.000Z',
    durationMs: 1000,
    rows: { total: 40, accepted: 40, rejected: 0, valid: 40 },
    rejectionsByCode: {},
    rejectedByStage: { validate: 0, api: 0 },
    files: [{ name: 'events_1.csv', status: 'SUCCEEDED', rows: { total: 40, accepted: 40, rejected: 0 }, source: { bucket: 'inbox', key: 'inbox/weekly-events/events_1.csv' }, rejectedFile: 's3://dead/rejected/events_1.rejected.csv' }],
    ...extra,
  } as unknown as Report;
}

describe('Function: adviceFor', () => {
  describe('a duplicate of a file that was imported', () => {
    it('does not warn that --force would issue every badge a second time when the run holding the content accepted none', () => {
      // Prepare: the first run rejected every record in validation (a wrong date format in the configuration), so its
      // claim is "imported" with 0 accepted; the operator fixed the configuration and the vendor delivered again.
      const report = reportOf({
        status: 'SKIPPED_DUPLICATE',
        rows: { total: 40, accepted: 0, rejected: 0, valid: 40 },
        duplicateOf: { runId: 'r1', key: 'inbox/weekly-events/events_1.csv', state: 'imported', accepted: 0 },
      });

      // Act
      const advice = adviceFor(report, 'operator') ?? '';

      // Assess: nothing was issued, so nothing would be issued "a second time"; the way on is a replay or a forced run.
      expect(advice).not.toMatch(/second time/);
      expect(advice).toMatch(/--force/);
    });

    it('counts the badges a forced run would issue again from what the holder accepted', () => {
      // Prepare
      const report = reportOf({ status: 'SKIPPED_DUPLICATE', duplicateOf: { runId: 'r1', key: 'inbox/weekly-events/events_1.csv', state: 'imported', accepted: 12 } });

      // Act
      const advice = adviceFor(report, 'operator') ?? '';

      // Assess
      expect(advice).toMatch(/the 12 badges that run accepted would be issued a second time/);
    });
  });

  describe('a completed run with rejected records', () => {
    it('tells the operator to replay what the API stage rejected, never to deliver the file again', () => {
      // Prepare
      const report = reportOf({
        status: 'COMPLETED_WITH_REJECTIONS',
        rows: { total: 40, accepted: 30, rejected: 10, valid: 40 },
        rejectionsByCode: { RETRIES_EXHAUSTED: 6, AMBIGUOUS: 2, '1054': 2 },
        rejectedByStage: { validate: 0, api: 10 },
      });

      // Act
      const operator = adviceFor(report, 'operator') ?? '';
      const vendor = adviceFor(report, 'vendor') ?? '';

      // Assess
      expect(operator).toMatch(/Do NOT deliver this file again/);
      expect(operator).toContain('`badges-import replay --stack <stack> --rejected s3://dead/rejected/events_1.rejected.csv`');
      expect(operator).not.toMatch(/--stage validate/);
      expect(vendor).toMatch(/10 records were not issued by the API and will be replayed/);
      expect(vendor).toMatch(/Do not deliver this file again/);
    });

    it('tells the operator to fix validation rejects in the file and replay them with --stage validate', () => {
      // Prepare
      const report = reportOf({
        status: 'COMPLETED_WITH_REJECTIONS',
        rows: { total: 40, accepted: 37, rejected: 3, valid: 37 },
        rejectionsByCode: { INVALID_DATE: 3 },
        rejectedByStage: { validate: 3, api: 0 },
      });

      // Act
      const operator = adviceFor(report, 'operator') ?? '';
      const vendor = adviceFor(report, 'vendor') ?? '';

      // Assess
      expect(operator).toMatch(/fix the data/);
      expect(operator).toContain('--stage validate`');
      expect(vendor).toMatch(/3 records were rejected as invalid and need fixing/);
    });

    it('does not tell the operator of a dry run that the content is claimed: a dry run claims nothing', () => {
      // Prepare
      const report = reportOf({
        status: 'COMPLETED_WITH_REJECTIONS',
        dryRun: true,
        rows: { total: 40, accepted: 0, rejected: 4, valid: 36 },
        rejectionsByCode: { INVALID_DATE: 4 },
        rejectedByStage: { validate: 4, api: 0 },
      });

      // Act
      const operator = adviceFor(report, 'operator') ?? '';

      // Assess
      expect(operator).not.toMatch(/deliver this file again|stays claimed/i);
      expect(operator).toMatch(/^A dry run: nothing was sent and the content is not claimed\. 4 records would be rejected/);
    });

    it('tells the operator that an EXPRESSION_ERROR is fixed in the data or in the expression, and only then', () => {
      // Prepare
      const withExpressions = reportOf({
        status: 'COMPLETED_WITH_REJECTIONS',
        rows: { total: 40, accepted: 36, rejected: 4, valid: 36 },
        rejectionsByCode: { EXPRESSION_ERROR: 3, INVALID_DATE: 1 },
        rejectedByStage: { validate: 4, api: 0 },
      });
      const withoutExpressions = reportOf({ ...withExpressions, rejectionsByCode: { INVALID_DATE: 4 } });

      // Act
      const advice = [adviceFor(withExpressions, 'operator') ?? '', adviceFor(withoutExpressions, 'operator') ?? ''];

      // Assess
      expect(advice[0]).toMatch(/3 of them failed a mapping or filter expression \(EXPRESSION_ERROR.*\): fix their data, or the expression in the configuration/);
      expect(advice[1]).not.toMatch(/EXPRESSION_ERROR/);
    });

    it('gives no advice for a run that succeeded', () => {
      // Act
      const advice = adviceFor(reportOf({}), 'operator');

      // Assess
      expect(advice).toBeUndefined();
    });
  });
});
