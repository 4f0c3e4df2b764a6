import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { rejectHeaderLine, rejectLine } from '../src/core/csv';
import { replayLocal } from '../src/local/replay';
import { type LocalRunResult, runLocal } from '../src/local/runner';
import { KNOWN_BADGES, SECRETS, UNKNOWN_BADGE, configDocument, HEADER, toCsv, validRow } from './support/factories';
import { type LocalServices, startLocalServices, stopLocalServices } from './support/local';

const work = mkdtempSync(join(tmpdir(), 'replay-'));
const document = configDocument();
const configFile = join(work, 'config.json');
writeFileSync(configFile, JSON.stringify(document));
const config = parseConfig(document);
const dataflow = config.dataflows[0]!;
const secrets = new StaticSecretsProvider(SECRETS);
const OTHER_UNKNOWN = '6571a3b9e4b0c1a2b3c4d5aa';

let services: LocalServices;
beforeAll(async () => {
  services = await startLocalServices({ users: [{ username: SECRETS['api/user'], password: SECRETS['api/password'] }], knownBadgeIds: [...KNOWN_BADGES] });
});
afterAll(() => stopLocalServices(services));

const run = (file: string, out: string) => runLocal({ config, configFile, dataflow, file, secrets, s3: services.s3, sandbox: services.sandbox, outDir: join(work, out) });
const replay = (rejected: string, out: string, stages?: Array<'api' | 'validate'>) =>
  replayLocal({ config, configFile, dataflow, rejected, stages, secrets, s3: services.s3, sandbox: services.sandbox, outDir: join(work, out) });
const rejectedRows = (result: LocalRunResult) => parse<Record<string, string>>(readFileSync(result.rejectedPath!, 'utf8'), { columns: true });
const ledgerOf = (base: number, n: number) => services.sandbox.ledger.filter((e) => e.customerId > base && e.customerId <= base + n);

describe('Function: replayLocal', () => {
  it('replays what the API refused once the badge exists, keeps original record numbers, and ends with every record accepted exactly once', async () => {
    // Prepare: 20 records; 3 name a badge the org does not have yet, one a badge it never will, one has a bad id.
    const base = 7_100_000;
    const rows = Array.from({ length: 20 }, (_, i) => validRow(i + 1, base));
    for (const n of [3, 7, 11]) rows[n - 1] = { ...rows[n - 1]!, badge_code: UNKNOWN_BADGE };
    rows[15] = { ...rows[15]!, badge_code: OTHER_UNKNOWN };
    rows[4] = { ...rows[4]!, member_id: 'N/A' };
    const file = join(work, 'events_replay.csv');
    writeFileSync(file, toCsv(rows));

    // Act 1: the first run rejects them.
    const first = await run(file, 'first');
    expect(first.report.rows).toMatchObject({ total: 20, accepted: 15, rejected: 5 });

    // Act 2: the badge is created in the org; the operator replays the API rejects.
    services.sandbox.addBadge(UNKNOWN_BADGE);
    const second = await replay(first.rejectedPath!, 'second');

    // Assess 2: the validation reject stayed behind; the three now known are accepted; 16 is still refused, as record 16.
    expect(second.selection).toEqual({ kept: 4, left: 1 });
    const report = second.result!.report;
    expect(report).toMatchObject({ replay: true, status: 'COMPLETED_WITH_REJECTIONS', rows: { total: 4, accepted: 3, rejected: 1 } });
    expect(rejectedRows(second.result!).map((r) => [r._row, r._stage, r._error_code, r.member_id])).toEqual([['16', 'api', '1054', String(base + 16)]]);
    expect(Object.keys(rejectedRows(second.result!)[0]!)).toEqual([...HEADER, '_row', '_stage', '_error_code', '_error_message']);

    // Act 3: that badge is created too, the operator fixes record 5 in the first rejected file and replays each part.
    services.sandbox.addBadge(OTHER_UNKNOWN);
    const third = await replay(second.result!.rejectedPath!, 'third');
    const fixed = join(work, 'events_replay.fixed.rejected.csv');
    writeFileSync(fixed, readFileSync(first.rejectedPath!, 'utf8').replace(/^N\/A,/m, `${base + 5},`));
    const fourth = await replay(fixed, 'fourth', ['validate']);

    // Assess: every record of the file accepted exactly once, across the four runs.
    expect(third.result!.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 1, accepted: 1 } });
    expect(fourth.selection).toEqual({ kept: 1, left: 4 });
    expect(fourth.result!.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 1, accepted: 1 } });
    const ledger = ledgerOf(base, 20);
    expect(ledger).toHaveLength(20);
    expect(new Set(ledger.map((e) => e.customerId)).size).toBe(20);
  });

  it('looks a replayed AMBIGUOUS record up first: one the API had issued is accepted without being issued again', async () => {
    // Prepare: two records imported; the rejected file (as a lost answer would have left it) calls both AMBIGUOUS,
    // but only the first was issued. A third, never sent, is AMBIGUOUS too.
    const base = 7_200_000;
    const rows = [validRow(1, base), validRow(2, base)];
    const file = join(work, 'events_ambiguous.csv');
    writeFileSync(file, toCsv(rows));
    const imported = await run(file, 'ambiguous-first');
    expect(imported.report.rows.accepted).toBe(2);
    const never = validRow(3, base);
    const line = (row: typeof never, n: number) => rejectLine({ number: n, fields: HEADER.map((h) => row[h] ?? '') }, 'api', 'AMBIGUOUS', 'No answer (ECONNRESET)');
    const rejected = join(work, 'events_ambiguous.rejected.csv');
    writeFileSync(rejected, rejectHeaderLine(HEADER) + line(rows[0]!, 1) + line(never, 3));

    // Act
    const result = (await replay(rejected, 'ambiguous-replay')).result!;

    // Assess: record 1 found issued (not sent again), record 3 found not issued and sent.
    expect(result.report).toMatchObject({ status: 'SUCCEEDED', rows: { total: 2, accepted: 2 } });
    expect(ledgerOf(base, 3).map((e) => e.customerId).sort()).toEqual([base + 1, base + 2, base + 3]);
  });

  it('refuses a file that is not a rejected-records file, naming what it expected', async () => {
    const file = join(work, 'not-rejected.csv');
    writeFileSync(file, toCsv([validRow(1, 7_300_000)]));
    await expect(replay(file, 'refused')).rejects.toThrow('Not a rejected-records file: its header does not end with _row,_stage,_error_code,_error_message');
  });
});
