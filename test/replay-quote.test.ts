import { Readable } from 'node:stream';
import { openCsv, rejectHeaderLine, rejectLine } from '../src/core/csv';
import { peekDelimiter, replayRecords, selectForReplay } from '../src/core/replay';
import { makeDataflow } from './support/factories';

/** A rejected-records file must read back, through the replay path, as the records it holds, whatever csv.quote is. */
const csv = { ...makeDataflow().csv, quote: "'" };
const header = ['member_id', 'badge_code', 'event_time', 'expiry_date', 'note'];
const fields = ['5000001', '6571a3b9e4b0c1a2b3c4d5e6', '2026-11-02 01:01:00', '2027-02-15', "'promo', week 48"];

describe('Function: rejectLine', () => {
  it('reads back every field of a rejected record as it was when the dataflow quotes with \'', async () => {
    // Prepare: a rejected record whose note holds the delimiter and the dataflow's quote.
    const file = rejectHeaderLine(header, csv) + rejectLine({ number: 7, fields }, 'api', 'RETRIES_EXHAUSTED', 'Not issued after 3 attempts', csv);

    // Act: the stage reads a replay file with the dataflow's csv settings.
    const replay = replayRecords(await openCsv(Readable.from([Buffer.from(file)]), csv));
    const records = [];
    for await (const record of replay.records) records.push(record);

    // Assess
    expect(records).toEqual([{ number: 7, fields }]);
  });
});

describe('Function: selectForReplay', () => {
  it('keeps the records of a file quoted with \' whole, so that the stage reads the selection back', async () => {
    // Prepare: a message with the delimiter and a double quote, which ' quoting leaves as literal text.
    const file =
      rejectHeaderLine(header, csv) +
      rejectLine({ number: 7, fields }, 'api', 'RETRIES_EXHAUSTED', 'HTTP 503, "busy"', csv) +
      rejectLine({ number: 9, fields: [...fields.slice(0, 4), 'x'] }, 'validate', 'INVALID_DATE', 'bad, date', csv);
    const written: string[] = [];

    // Act
    const { stream, ...dialect } = await peekDelimiter(Readable.from([Buffer.from(file)]), csv.quote);
    const selection = await selectForReplay(stream, dialect, { stages: ['api'] }, (text) => void written.push(text));
    const replay = replayRecords(await openCsv(Readable.from([Buffer.from(written.join(''))]), csv));
    const records = [];
    for await (const record of replay.records) records.push(record);

    // Assess
    expect(selection).toMatchObject({ kept: 1, left: 1, duplicates: 0 });
    expect(records).toEqual([{ number: 7, fields }]);
  });
});
