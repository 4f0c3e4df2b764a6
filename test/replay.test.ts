import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { parseConfig } from '../src/config/load';
import { type RejectStage, rejectHeaderLine, rejectLine } from '../src/core/csv';
import { replayLocal } from '../src/local/replay';
import { type LocalRunResult, runLocal, runObject } from '../src/local/runner';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { putText } from '../src/aws/s3';
import { describeSelection, selectForReplay } from '../src/core/replay';
import { Readable } from 'node:stream';
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
    expect(second.selection).toMatchObject({ kept: 4, left: 1, duplicates: 0, replayedBefore: 0, rows: [3, 7, 11, 16] });
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
    expect(fourth.selection).toMatchObject({ kept: 1, left: 4, duplicates: 0 });
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

  it('never replays a DUPLICATE_IN_FILE record, whatever the stages: the badge is issued once', async () => {
    // Prepare: record 3 repeats record 1 (same customer, badge and event time); the first run sends record 1 only.
    const base = 7_400_000;
    const rows = [validRow(1, base), validRow(2, base), { ...validRow(1, base), note: 'sent again by the vendor' }];
    const file = join(work, 'events_repeat.csv');
    writeFileSync(file, toCsv(rows));
    const first = await run(file, 'repeat-first');
    expect(rejectedRows(first).map((r) => [r._row, r._error_code])).toEqual([['3', 'DUPLICATE_IN_FILE']]);

    // Act
    const validate = await replay(first.rejectedPath!, 'repeat-validate', ['validate']);
    const both = await replay(first.rejectedPath!, 'repeat-both', ['api', 'validate']);

    // Assess
    expect(validate).toMatchObject({ selection: { kept: 0, left: 0, duplicates: 1 } });
    expect(both).toMatchObject({ selection: { kept: 0, left: 0, duplicates: 1 } });
    expect(ledgerOf(base, 3).map((e) => e.customerId).sort()).toEqual([base + 1, base + 2]);
  });

  it('rejects again, unsent, a DUPLICATE_IN_FILE record put back in a replay file by hand', async () => {
    // Prepare: record 1 was issued; a replay file made by hand holds its repeat (record 2) and a new record 3.
    const base = 7_500_000;
    const source = join(work, 'events_handmade.csv');
    writeFileSync(source, toCsv([validRow(1, base)]));
    const imported = await run(source, 'handmade-first');
    expect(imported.report.rows.accepted).toBe(1);
    const line = (row: ReturnType<typeof validRow>, n: number, stage: RejectStage, code: string, message: string) => rejectLine({ number: n, fields: HEADER.map((h) => row[h] ?? '') }, stage, code, message);
    const replayFile = join(work, 'events_handmade.replay.csv');
    writeFileSync(
      replayFile,
      rejectHeaderLine(HEADER) + line(validRow(1, base), 2, 'validate', 'DUPLICATE_IN_FILE', 'The same customerId, badgeMetaId and earnEventDate as record 1: not sent twice') + line(validRow(3, base), 3, 'api', 'RETRIES_EXHAUSTED', 'HTTP 503'),
    );
    const key = `replays/${dataflow.name}/handmade/events_handmade.replay.csv`;
    await putText(services.s3.client, LOCAL_BUCKETS.inbox, key, readFileSync(replayFile, 'utf8'));

    // Act
    const result = await runObject({ config, configFile, dataflow, secrets, s3: services.s3, sandbox: services.sandbox, outDir: join(work, 'handmade-replay'), replay: true }, key);

    // Assess: record 2 rejected again as DUPLICATE_IN_FILE under its number; record 3 sent; record 1 issued once.
    expect(result.report.rows).toMatchObject({ total: 2, accepted: 1, rejected: 1 });
    expect(rejectedRows(result).map((r) => [r._row, r._stage, r._error_code])).toEqual([['2', 'validate', 'DUPLICATE_IN_FILE']]);
    expect(rejectedRows(result)[0]!._error_message).toMatch(/^Rejected as DUPLICATE_IN_FILE in the original file \(The same customerId.*as record 1: not sent twice\): a replay never sends it/);
    expect(ledgerOf(base, 3).map((e) => e.customerId).sort()).toEqual([base + 1, base + 3]);
  });

  it('refuses a file that is not a rejected-records file, naming what it expected', async () => {
    const file = join(work, 'not-rejected.csv');
    writeFileSync(file, toCsv([validRow(1, 7_300_000)]));
    await expect(replay(file, 'refused')).rejects.toThrow('Not a rejected-records file: its header does not end with _row,_stage,_error_code,_error_message');
  });
});

describe('Function: selectForReplay', () => {
  it('leaves DUPLICATE_IN_FILE records out whatever the stages, and counts them apart', async () => {
    // Prepare
    const row = validRow(1, 7_600_000);
    const line = (n: number, stage: RejectStage, code: string) => rejectLine({ number: n, fields: HEADER.map((h) => row[h] ?? '') }, stage, code, 'why');
    const file = rejectHeaderLine(HEADER) + line(2, 'validate', 'DUPLICATE_IN_FILE') + line(3, 'validate', 'INVALID_DATE') + line(4, 'api', 'RETRIES_EXHAUSTED') + line(5, 'validate', 'DUPLICATE_IN_FILE');
    const written: string[] = [];

    // Act
    const selection = await selectForReplay(Readable.from([file]), { delimiter: ',', quote: '"' }, { stages: ['api', 'validate'] }, (text) => void written.push(text));

    // Assess
    expect(selection).toMatchObject({ kept: 2, left: 0, duplicates: 2, replayedBefore: 0 });
    expect(written.join('')).not.toContain('DUPLICATE_IN_FILE');
    expect(describeSelection(selection, 'api,validate')).toBe('replaying 2 record(s); 2 DUPLICATE_IN_FILE records left out: their first occurrence is the one to replay');
    expect(describeSelection({ kept: 0, left: 3, duplicates: 0, replayedBefore: 0, rows: [] }, 'api')).toBe('nothing to replay; 3 left out: rejected by another stage than api');
  });
});
