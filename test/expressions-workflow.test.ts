import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { replayLocal } from '../src/local/replay';
import { type LocalRunResult, runLocal } from '../src/local/runner';
import { KNOWN_BADGES, configDocument, kolkataEpochMs } from './support/factories';
import { localWorkflow } from './support/local';

// Mapped fields computed by CEL expressions, through the local state machine on the deployed bundles.
const STORE_BADGE = KNOWN_BADGES[1];
const [house] = configDocument().dataflows as Array<Record<string, unknown>>;
const document = {
  dataflows: [
    {
      ...house,
      name: 'expression-events',
      source: { type: 's3', prefix: 'inbox/expressions/' },
      mapping: {
        customerId: { column: 'member_id' },
        // A badge chosen by a column; loyal web customers (more than 3 points) keep their own badge.
        badgeMetaId: { expression: `channel == "store" ? "${STORE_BADGE}" : int(points) > 3 ? badge_code : "${KNOWN_BADGES[0]}"` },
        // A date from a date column and a time column.
        earnEventDate: { expression: 'event_date + " " + event_time', format: 'dd/MM/yyyy HH:mm', timeZone: 'Asia/Kolkata' },
        // A default when a column is empty, read by a header that is not an identifier.
        earnExpiresOn: { expression: 'size(row["Expiry Date"]) == 0 ? "31/12/2027" : row["Expiry Date"]', format: 'dd/MM/yyyy', timeZone: 'Asia/Kolkata' },
      },
    },
    {
      ...house,
      name: 'broken-expressions',
      source: { type: 's3', prefix: 'inbox/broken/' },
      mapping: {
        customerId: { expression: 'member_id == ""' },
        badgeMetaId: { column: 'badge_code' },
        earnEventDate: { expression: 'event_date + " " + event_time', format: 'dd/MM/yyyy HH:mm', timeZone: 'Asia/Kolkata' },
        earnExpiresOn: { expression: 'row["nope"]', format: 'dd/MM/yyyy', timeZone: 'Asia/Kolkata' },
      },
    },
  ],
};
const bench = localWorkflow('expressions-workflow-', document, { sandbox: { knownBadgeIds: [...KNOWN_BADGES] } });

const HEADER = ['member_id', 'channel', 'badge_code', 'event_date', 'event_time', 'Expiry Date', 'points'];
type Row = [member: string, channel: string, badge: string, date: string, time: string, expiry: string, points: string];
const csv = (rows: readonly Row[]) => `${[HEADER, ...rows].map((r) => r.map((f) => (f.includes(' ') ? `"${f}"` : f)).join(',')).join('\n')}\n`;
const rejectedOf = (result: LocalRunResult): Array<Record<string, string>> => parse(readFileSync(result.rejectedPath!), { columns: true });

async function runFile(flow: string, name: string, text: string): Promise<LocalRunResult> {
  const file = join(bench.work, name);
  writeFileSync(file, text);
  return runLocal({ ...bench.options(flow, { outDir: join(bench.work, 'out', name) }), file });
}

describe('Workflow: mapped fields computed by expressions', () => {
  it('sends what the expressions compute and rejects a record whose expression fails as EXPRESSION_ERROR, replayable once fixed', async () => {
    // Prepare
    const base = 8_300_000;
    const rows: Row[] = [
      [`${base + 1}`, 'store', KNOWN_BADGES[0], '20/11/2026', '10:30', '31/01/2027', '0'],
      [`${base + 2}`, 'web', STORE_BADGE, '21/11/2026', '23:05', '', '7'],
      [`${base + 3}`, 'web', STORE_BADGE, '22/11/2026', '08:00', '28/02/2027', '1'],
      [`${base + 4}`, 'web', STORE_BADGE, '23/11/2026', '09:15', '28/02/2027', 'abc'],
      [`${base + 5}`, 'store', KNOWN_BADGES[0], '24/11/2026', '9:15', '28/02/2027', '0'],
    ];

    // Act
    const result = await runFile('expression-events', 'events_expressions.csv', csv(rows));

    // Assess: the badge by channel and points, the date from two columns in the zone, the default expiry.
    expect(result.report.rows).toMatchObject({ total: 5, accepted: 3, rejected: 2 });
    expect(result.report.rejectionsByCode).toEqual({ EXPRESSION_ERROR: 1, INVALID_DATE: 1 });
    const sent = bench.ledgerFor(base, 5).sort((a, b) => a.customerId - b.customerId);
    expect(sent.map((e) => [e.customerId, e.badgeMetaId, e.earnEventDate, e.earnExpiresOn])).toEqual([
      [base + 1, STORE_BADGE, kolkataEpochMs('2026-11-20 10:30:00'), kolkataEpochMs('2027-01-31')],
      [base + 2, STORE_BADGE, kolkataEpochMs('2026-11-21 23:05:00'), kolkataEpochMs('2027-12-31')],
      [base + 3, KNOWN_BADGES[0], kolkataEpochMs('2026-11-22 08:00:00'), kolkataEpochMs('2027-02-28')],
    ]);
    // The failing record keeps its columns, its number and the expression's one-line message.
    const rejected = rejectedOf(result);
    expect(rejected.map((r) => [r._row, r._stage, r._error_code, r._error_message])).toEqual([
      ['4', 'validate', 'EXPRESSION_ERROR', 'badgeMetaId: int() type error: cannot convert to int'],
      ['5', 'validate', 'INVALID_DATE', expect.stringContaining('earnEventDate')],
    ]);
    expect(HEADER.map((h) => rejected[0]![h])).toEqual(rows[3]);

    // Act 2: the operator fixes the points of record 4 in the rejected file and replays the validation rejects.
    const fixed = join(bench.work, 'events_expressions.fixed.rejected.csv');
    writeFileSync(fixed, readFileSync(result.rejectedPath!, 'utf8').replace(',abc,', ',5,'));
    const replay = await replayLocal({ ...bench.options('expression-events'), rejected: fixed, stages: ['validate'] });

    // Assess 2: record 4 is accepted under its own number, with the badge its points now give; record 5 is still refused.
    expect(replay.result!.report.rows).toMatchObject({ total: 2, accepted: 1, rejected: 1 });
    expect(bench.ledgerFor(base + 3, 1).map((e) => e.badgeMetaId)).toEqual([STORE_BADGE]);
    expect(rejectedOf(replay.result!).map((r) => [r._row, r._error_code])).toEqual([['5', 'INVALID_DATE']]);
  });

  it('rejects every record as EXPRESSION_ERROR for a missing key and a result of the wrong type, and sends nothing', async () => {
    // Prepare
    const base = 8_400_000;
    const rows: Row[] = [
      [`${base + 1}`, 'store', KNOWN_BADGES[0], '20/11/2026', '10:30', '31/01/2027', '0'],
      [`${base + 2}`, 'web', KNOWN_BADGES[1], '21/11/2026', '11:30', '31/01/2027', '0'],
    ];

    // Act
    const result = await runFile('broken-expressions', 'events_broken.csv', csv(rows));

    // Assess
    expect(result.report.rows).toMatchObject({ total: 2, accepted: 0, rejected: 2 });
    expect(bench.ledgerFor(base, 2)).toEqual([]);
    expect(rejectedOf(result).map((r) => [r._row, r._error_code, r._error_message])).toEqual(
      ['1', '2'].map((n) => [n, 'EXPRESSION_ERROR', 'customerId: the result is a bool; a field needs a string, a number, a timestamp or null; earnExpiresOn: No such key: nope']),
    );
  });

  it('fails the file, sending nothing, when an expression names a column the header lacks', async () => {
    // Prepare
    const text = csv([['8500001', 'store', KNOWN_BADGES[0], '20/11/2026', '10:30', '31/01/2027', '0']]).replace(/^member_id,channel,/, 'member_id,canal,');

    // Act
    const result = await runFile('expression-events', 'events_no_channel.csv', text);

    // Assess
    expect(result.report.status).toBe('FAILED');
    expect(result.report.error).toMatchObject({ code: 'MISSING_COLUMN', message: expect.stringContaining('mapping.badgeMetaId.expression names "channel"') });
    expect(bench.ledgerFor(8_500_000, 1)).toEqual([]);
  });
});
