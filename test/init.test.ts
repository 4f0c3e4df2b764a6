import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseConfig } from '../src/config/load';
import { inferDraft } from '../src/core/infer';
import { guessDateFormat, swapDayMonth } from '../src/core/infer-dates';
import { SampleError, decodeSample, detectDialect, splitRecords } from '../src/core/infer-text';
import { compileMapper } from '../src/core/mapping';
import { defaultName, draftConfiguration } from '../src/ops/init';
import { runCli } from './support/cli';
import { delimited, formatDate, sampleRecords } from './support/samples';

const work = mkdtempSync(join(tmpdir(), 'init-'));

/** A sample's rows as text: the header, then each record's customer, badge, event and expiry in the given formats. */
function sampleText(options: { delimiter?: string; event?: string; expiry?: string; count?: number; maxDay?: number; header?: string[] } = {}): string {
  const { delimiter = ',', event = 'yyyy-MM-dd HH:mm:ss', expiry = 'yyyy-MM-dd', count = 30, maxDay, header = ['member_id', 'badge_code', 'event_time', 'expiry_date', 'note'] } = options;
  const records = sampleRecords(count, maxDay ? { maxDay } : {});
  return delimited([header, ...records.map((r) => [r.customer, r.badge, formatDate(r.event, event), formatDate(r.expiry, expiry), r.note])], delimiter);
}

describe('Function: decodeSample', () => {
  it.each([
    ['UTF-8 without a BOM', Buffer.from('a,b\n1,é\n', 'utf8'), 'utf-8'],
    ['UTF-8 with a BOM', Buffer.from('\uFEFFa,b\n1,é\n', 'utf8'), 'utf-8'],
    ['Latin-1 (bytes invalid as UTF-8)', Buffer.from('a,b\n1,é\n', 'latin1'), 'latin1'],
    ['UTF-16LE with its BOM', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('a,b\n1,é\n', 'utf16le')]), 'utf-16le'],
    ['UTF-16LE without a BOM (NUL after every ASCII byte)', Buffer.from('member,badge\n1,x\n', 'utf16le'), 'utf-16le'],
  ])('reads %s', (_label, bytes, encoding) => {
    // Act
    const decoded = decodeSample(bytes, false);

    // Assess
    expect(decoded.encoding).toBe(encoding);
    expect(decoded.text).toMatch(/^(a,b\n1,é\n|member,badge\n1,x\n)$/);
  });

  it('keeps a UTF-8 character split by the end of a cut prefix from making the sample Latin-1', () => {
    // Prepare: "é" is two bytes; the prefix ends after the first.
    const bytes = Buffer.from('a,b\n1,é', 'utf8').subarray(0, -1);

    // Act + Assess
    expect(decodeSample(bytes, true).encoding).toBe('utf-8');
    expect(decodeSample(bytes, false).encoding).toBe('latin1');
  });

  it('says when Latin-1 holds Windows-1252 characters (0x80–0x9F), and refuses UTF-16BE and binary data', () => {
    expect(decodeSample(Buffer.from([0x61, 0x2c, 0x80, 0x0a]), false).review).toMatch(/Windows-1252/);
    expect(() => decodeSample(Buffer.from([0xfe, 0xff, 0, 0x61]), false)).toThrow(/UTF-16BE/);
    expect(() => decodeSample(Buffer.from('a,b\n1,\u0000\u0001\u0002x\n', 'latin1'), false)).toThrow(SampleError);
  });
});

describe('Function: detectDialect', () => {
  it.each([',', ';', '|', '\t'])('finds the delimiter %j by the field counts, quotes respected', (delimiter) => {
    // Prepare: the note holds every other delimiter and a quoted one of its own.
    const text = sampleText({ delimiter }).replace(/store (\d+)/g, `"st,o;r|e\t${delimiter} $1"`);

    // Act
    const dialect = detectDialect(text, 1000, false);

    // Assess
    expect({ delimiter: dialect.delimiter, quote: dialect.quote }).toEqual({ delimiter, quote: '"' });
    expect(dialect.split.records.every((r) => r.length === 5)).toBe(true);
  });

  it("takes ' as the quote when fields are quoted with it and none with \"", () => {
    // Act
    const dialect = detectDialect("id,name,when\n1,'a,b',2026-10-01\n2,'c',2026-10-02\n", 1000, false);

    // Assess
    expect(dialect.quote).toBe("'");
    expect(dialect.split.records[1]).toEqual(['1', 'a,b', '2026-10-01']);
  });

  it('refuses a sample no delimiter splits', () => {
    expect(() => detectDialect('one\ntwo\n', 1000, false)).toThrow(/No delimiter splits/);
  });
});

describe('Function: splitRecords', () => {
  it('reads records as the guard does: quoted line ends, doubled quotes, every line end, no blank records, a cut last record dropped', () => {
    // Act
    const split = splitRecords('a,b\r\n"x\ny","say ""hi"""\r\n\n3,4\r5,"cut', ',', '"', 100, true);

    // Assess
    expect(split.records).toEqual([['a', 'b'], ['x\ny', 'say "hi"'], ['3', '4']]);
    expect(split.end).toBe('a,b\r\n"x\ny","say ""hi"""\r\n\n3,4\r'.length);
  });
});

describe('Function: guessDateFormat', () => {
  it.each([
    [['2026-10-05 09:07:00', '2026-10-17 23:59:59'], 'yyyy-MM-dd HH:mm:ss'],
    [['05-10-2026 09:07:00', '17-10-2026 23:59:59'], 'dd-MM-yyyy HH:mm:ss'],
    [['10/17/2026 09:07:00', '10/05/2026 10:00:00'], 'MM/dd/yyyy HH:mm:ss'],
    [['20261005', '20261017'], 'yyyyMMdd'],
    [['2026-10-05T09:07:00Z', '2026-10-17T09:07:00+05:30'], 'iso'],
    [['1791100800', '1791187200'], 'epoch-s'],
    [['1791100800000', '1791187200123'], 'epoch-ms'],
    [['13/10/26', '02/10/26'], 'dd/MM/yy'],
    [['10/13/26', '10/02/26'], 'MM/dd/yy'],
    [['2026-10-05 09:07:00.123', '2026-10-17 23:59:59.000'], 'yyyy-MM-dd HH:mm:ss.SSS'],
    [['2026-10-05 09:07:00+05:30', '2026-10-17 23:59:59-03:00'], 'yyyy-MM-dd HH:mm:ssZZ'],
    [['10/13/2026 10:00 AM', '10/02/2026 01:00 PM'], 'MM/dd/yyyy hh:mm a'],
    [['13-Oct-2026', '02-Nov-2026'], 'dd-MMM-yyyy'],
  ])('reads %j as %s', (values, format) => {
    expect(guessDateFormat(values)?.format).toBe(format);
  });

  it('reports dd/MM against MM/dd when no day exceeds 12, and takes dd/MM', () => {
    // Act
    const guess = guessDateFormat(['05/10/2026', '11/12/2026', '01/02/2026']);

    // Assess
    expect(guess).toMatchObject({ format: 'dd/MM/yyyy', alsoFits: 'MM/dd/yyyy', fits: 3, of: 3 });
  });

  it('does not take customer ids or amounts for epoch dates', () => {
    expect(guessDateFormat(['4100201', '4100202'])).toBeUndefined();
    expect(guessDateFormat(['12', '4500'])).toBeUndefined();
  });

  it('says a two-digit year is read in 2000–2060 or 1961–1999, and does not swap a month name for a day', () => {
    // Act
    const guess = guessDateFormat(['05/10/26', '11/12/26']);

    // Assess
    expect(guess).toMatchObject({ format: 'dd/MM/yy', alsoFits: 'MM/dd/yy', twoDigitYear: true });
    expect(swapDayMonth('dd-MMM-yyyy')).toBeUndefined();
  });

  it('swaps day and month tokens only', () => {
    expect(swapDayMonth('d/M/yyyy H:mm')).toBe('M/d/yyyy H:mm');
    expect(swapDayMonth('epoch-s')).toBeUndefined();
  });
});

describe('Function: inferDraft', () => {
  it('drafts a configuration the schema accepts and whose mapper reads every record of the sample', () => {
    // Prepare
    const text = sampleText({ delimiter: ';', event: 'dd-MM-yyyy HH:mm:ss', expiry: 'dd-MM-yyyy' });

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'weekly', cut: false });

    // Assess
    const flow = parseConfig(draft.document).dataflows[0]!;
    const [header, ...records] = splitRecords(text, ';', '"', 1000, false).records;
    const mapper = compileMapper(flow, header!);
    expect(records.map((r) => mapper(r)).filter((r) => !r.ok)).toEqual([]);
    expect(flow.mapping.earnEventDate.format).toBe('dd-MM-yyyy HH:mm:ss');
    expect(draft.review.map((r) => r.path)).toEqual(['mapping.*.timeZone', 'destination', 'source']);
  });

  it('proposes a placeholder badge id and a constant expiry when the sample has neither, and says so', () => {
    // Prepare
    const text = 'customer,earned\n101,2026-10-01\n102,2026-10-02\n';

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'no-badge', cut: false });

    // Assess
    expect(draft.document.dataflows[0].mapping).toEqual({
      customerId: { column: 'customer' },
      badgeMetaId: { value: '000000000000000000000000' },
      earnEventDate: { column: 'earned', format: 'yyyy-MM-dd', timeZone: 'UTC' },
      earnExpiresOn: { value: '2099-12-31', format: 'yyyy-MM-dd', timeZone: 'UTC' },
    });
    expect(draft.review.map((r) => r.path)).toEqual(expect.arrayContaining(['mapping.badgeMetaId', 'mapping.earnExpiresOn']));
    expect(() => parseConfig(draft.document)).not.toThrow();
  });

  it('takes the header names for the roles over the order of the dates', () => {
    // Prepare: the expiry column comes first, and its header says so.
    const text = sampleText({ header: ['user_id', 'badge', 'valid_until', 'earned_on', 'x'] });

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess: the values say otherwise (the file's "valid_until" holds the event times), and the header wins.
    expect(draft.document.dataflows[0].mapping).toMatchObject({ earnEventDate: { column: 'earned_on' }, earnExpiresOn: { column: 'valid_until' } });
    expect(draft.review.find((r) => r.path === 'mapping.earnExpiresOn.column')?.message).toMatch(/^valid_until is taken for the expiry by its header, but it is later than earned_on in only 0 of 30 records/);
  });

  it('takes a column named for the event over one merely dated, and lists the date columns it leaves out', () => {
    // Prepare
    const records = sampleRecords(20);
    const text = delimited([['customer', 'badge', 'created_at', 'earn_date', 'expiry'], ...records.map((r) => [r.customer, r.badge, formatDate(r.event - 3600_000, 'yyyy-MM-dd HH:mm:ss'), formatDate(r.event, 'yyyy-MM-dd HH:mm:ss'), formatDate(r.expiry, 'yyyy-MM-dd')])], ',');

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    expect(draft.document.dataflows[0].mapping).toMatchObject({ earnEventDate: { column: 'earn_date' }, earnExpiresOn: { column: 'expiry' } });
    expect(draft.decisions.find((d) => d.subject === 'not mapped')).toEqual({ subject: 'not mapped', choice: 'created_at', why: 'also dates: created_at' });
  });

  it('does not take a column of epoch seconds named for the event for the customer ids, when the ids have 10 digits too', () => {
    // Prepare: 10-digit customer ids are also epoch seconds of 2026; the event column comes first.
    const records = sampleRecords(20, { base: 1_790_000_000 });
    const text = delimited([['event_ts', 'id', 'badge'], ...records.map((r) => [formatDate(r.event, 'epoch-s'), r.customer, r.badge])], ',');

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    expect(draft.document.dataflows[0].mapping).toMatchObject({ customerId: { column: 'id' }, earnEventDate: { column: 'event_ts', format: 'epoch-s' } });
  });

  it('says it could not tell customer ids from epoch seconds when no header names either', () => {
    // Prepare
    const records = sampleRecords(20, { base: 1_790_000_000 });
    const text = delimited([['a', 'b', 'c'], ...records.map((r) => [formatDate(r.event, 'epoch-s'), r.customer, r.badge])], ',');

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    expect(draft.review.find((r) => r.path === 'mapping.customerId.column')?.message).toMatch(/^the values of a also read as epoch-s, and b also holds whole numbers: .*check which column holds them/);
  });

  it('says which other columns also hold 24-hexadecimal values when no header names the badge', () => {
    // Prepare: a transaction reference of the same shape comes before the badge column.
    const records = sampleRecords(20);
    const text = delimited([['member', 'txn_ref', 'code', 'event_date'], ...records.map((r, i) => [r.customer, `abcdef0123456789abcd${String(1000 + i)}`, r.badge, formatDate(r.event, 'yyyy-MM-dd')])], ',');

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    expect(draft.review.find((r) => r.path === 'mapping.badgeMetaId.column')?.message).toMatch(/txn_ref and code both hold 24-hexadecimal values/);
  });

  it('drafts two-digit years, and says which century the product reads them in', () => {
    // Prepare
    const text = sampleText({ event: 'dd/MM/yy', expiry: 'dd/MM/yy' });

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    expect(draft.document.dataflows[0].mapping).toMatchObject({ earnEventDate: { format: 'dd/MM/yy' }, earnExpiresOn: { format: 'dd/MM/yy' } });
    expect(draft.review.filter((r) => /two-digit years: the product reads 00–60 as 2000–2060/.test(r.message)).map((r) => r.path)).toEqual(['mapping.earnEventDate.format', 'mapping.earnExpiresOn.format']);
  });

  it('says a cut prefix holds no whole record, rather than that the file has none', () => {
    // Prepare: the first record is longer than the bytes read.
    const text = `member_id,badge_id,event_date,note\n1001,6571a3b9e4b0c1a2b3c4d5e7,2026-10-01,${'x'.repeat(2000)}\n`;

    // Act + Assess
    expect(() => inferDraft(Buffer.from(text).subarray(0, 1000), { name: 'x', cut: true })).toThrow(/^The first 1,000 bytes of the sample's text hold no whole record below its first line/);
  });

  it('names the column of customer ids written with leading zeros, which the product rejects', () => {
    // Prepare
    const text = 'member_id,badge_id,event_date\n0001001,6571a3b9e4b0c1a2b3c4d5e7,2026-10-01\n0001002,6571a3b9e4b0c1a2b3c4d5e7,2026-10-02\n';

    // Act + Assess
    expect(() => inferDraft(Buffer.from(text), { name: 'x', cut: false })).toThrow(/member_id holds whole numbers with leading zeros \(e\.g\. "0001001"\), which the product rejects INVALID_CUSTOMER_ID/);
  });

  it('says when the badge column it takes holds only 24-digit numbers and no header names a badge', () => {
    // Prepare
    const text = 'member_id,ref,event_date\n1001,123456789012345678901234,2026-10-01\n1002,123456789012345678901235,2026-10-02\n';

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    expect(draft.review.find((r) => r.path === 'mapping.badgeMetaId.column')?.message).toMatch(/^ref holds 24-digit numbers, which are also 24 hexadecimal characters/);
  });

  it('gives records whose expiry column is empty the default expiry, in the column\'s format, instead of a mapping the run rejects', () => {
    // Prepare: most records leave the expiry empty (the badge does not expire).
    const records = sampleRecords(30);
    const text = delimited([['member_id', 'badge_id', 'earned_on', 'expires_on'], ...records.map((r, i) => [r.customer, r.badge, formatDate(r.event, 'dd/MM/yyyy HH:mm'), i % 10 === 0 ? formatDate(r.expiry, 'dd/MM/yyyy') : ''])], ',');

    // Act
    const draft = inferDraft(Buffer.from(text), { name: 'x', cut: false });

    // Assess
    const flow = parseConfig(draft.document).dataflows[0]!;
    const [header, ...rows] = splitRecords(text, ',', '"', 1000, false).records;
    const mapper = compileMapper(flow, header!);
    expect(rows.map((r) => mapper(r)).filter((r) => !r.ok)).toEqual([]);
    expect(flow.mapping.earnExpiresOn).toMatchObject({ expression: 'row["expires_on"].trim() != "" ? row["expires_on"] : "31/12/2099"', format: 'dd/MM/yyyy' });
    expect(draft.review.find((r) => r.path === 'mapping.earnExpiresOn.expression')?.message).toBe('expires_on is empty in 27 of 30 records: the draft\'s expression gives those the expiry 2099-12-31; set the date your program uses');
  });

  it('explains a file whose first row is data, and proposes a header line', () => {
    // Prepare
    const text = sampleText().split('\n').slice(1).join('\n');

    // Act + Assess
    expect(() => inferDraft(Buffer.from(text), { name: 'x', cut: false })).toThrow(/The first row looks like data, not a header: .*needs a header row.*customer_id,badge_id,event_date,expiry_date,column_5/);
  });

  it('looks at no more records than the limit, and says where it stopped', () => {
    // Act
    const draft = inferDraft(Buffer.from(sampleText({ count: 50 })), { name: 'x', cut: false, maxRecords: 20 });

    // Assess
    expect({ records: draft.records, limited: draft.limited }).toEqual({ records: 20, limited: true });
    expect(draft.checked.toString().trim().split('\n')).toHaveLength(21);
  });
});

describe('Function: draftConfiguration', () => {
  it('reads only the first maxBytes of a large gzip sample, drops the record the cut splits, and says so', async () => {
    // Prepare
    const sample = join(work, 'large.csv.gz');
    writeFileSync(sample, gzipSync(sampleText({ count: 2000 })));

    // Act
    const result = await draftConfiguration({ sample, maxBytes: 4096 });

    // Assess: every record looked at is whole, and read by the product's reader as valid.
    expect(result.draft.records).toBeGreaterThan(40);
    expect(result.check).toMatchObject({ records: result.draft.records, valid: result.draft.records });
    expect(result.text).toContain(`read           its first 4,096 bytes of text (${result.draft.records} whole records); the rest of the file (`);
  });
});

describe('Function: defaultName', () => {
  it.each([
    ['events_2026-11-23.csv', 'events'],
    ['/x/Rewards Export.csv.gz.gpg', 'rewards-export'],
    ['2026.csv', 'vendor-file'],
  ])('names %s %s', (file, name) => {
    expect(defaultName(file)).toBe(name);
  });
});

describe('CLI: badges-import init', () => {
  it('reports dd/MM against MM/dd as a decision to review and writes dd/MM', async () => {
    // Prepare
    const sample = join(work, 'ambiguous.csv');
    writeFileSync(sample, sampleText({ event: 'dd/MM/yyyy HH:mm', expiry: 'dd/MM/yyyy', maxDay: 12 }));
    const out = join(work, 'ambiguous.json');

    // Act
    const { code, stdout } = await runCli(['init', '--sample', sample, '--out', out]);

    // Assess
    expect(code).toBe(0);
    expect(stdout).toContain('mapping.earnEventDate.format: every value of event_time also reads as MM/dd/yyyy HH:mm (no day above 12 in the sample): the draft takes dd/MM/yyyy HH:mm');
    expect(stdout).toContain('mapping.earnExpiresOn.format: every value of expiry_date also reads as MM/dd/yyyy');
    expect(stdout).toContain('sample check   all 30 records read are valid with this draft');
    expect(JSON.parse(readFileSync(out, 'utf8')).dataflows[0].mapping.earnEventDate.format).toBe('dd/MM/yyyy HH:mm');
  });

  it('drafts a UTF-16LE sample that the product\'s own reader then reads record for record', async () => {
    // Prepare
    const sample = join(work, 'wide.csv');
    writeFileSync(sample, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(sampleText(), 'utf16le')]));
    const out = join(work, 'wide.json');

    // Act
    const { code, stdout } = await runCli(['init', '--sample', sample, '--out', out]);

    // Assess
    expect(code).toBe(0);
    expect(stdout).toContain('encoding       utf-16le: it starts with the UTF-16LE byte-order mark (FF FE)');
    expect(stdout).toContain('sample check   all 30 records read are valid with this draft');
  });

  it('counts events in the future as data problems of the sample, not as a mapping to check', async () => {
    // Prepare: every event is years ahead; the mapping is right all the same.
    const sample = join(work, 'future.csv');
    writeFileSync(sample, sampleText().replace(/2026-(\d\d-\d\d \d)/g, '2031-$1').replace(/2027-(\d\d-\d\d)/g, '2032-$1'));
    const out = join(work, 'future.json');

    // Act
    const { code, stdout } = await runCli(['init', '--sample', sample, '--out', out]);

    // Assess
    expect(code).toBe(0);
    expect(stdout).toMatch(/sample check   0 of 30 records are valid with this draft; 30 would be rejected: EVENT_IN_FUTURE 30 \(records 1, 2, 3, 4, 5, …\)/);
    expect(stdout).not.toContain('more than a tenth');
    expect(JSON.parse(readFileSync(out, 'utf8')).dataflows[0].mapping.earnEventDate).toEqual({ column: 'event_time', format: 'yyyy-MM-dd HH:mm:ss', timeZone: 'UTC' });
  });

  it('explains a headerless file, exits 2 and writes nothing', async () => {
    // Prepare
    const sample = join(work, 'headerless.csv');
    writeFileSync(sample, sampleText().split('\n').slice(1).join('\n'));
    const out = join(work, 'headerless.json');

    // Act
    const { code, stderr } = await runCli(['init', '--sample', sample, '--out', out]);

    // Assess
    expect(code).toBe(2);
    expect(stderr).toMatch(/^SampleError: The first row looks like data, not a header/);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses to overwrite --out without --force, and overwrites it with --force', async () => {
    // Prepare
    const sample = join(work, 'plain.csv');
    writeFileSync(sample, sampleText());
    const out = join(work, 'existing.json');
    writeFileSync(out, '{"mine": true}\n');

    // Act
    const refused = await runCli(['init', '--sample', sample, '--out', out]);
    const kept = readFileSync(out, 'utf8');
    const forced = await runCli(['init', '--sample', sample, '--out', out, '--force']);

    // Assess
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({ code: 2, stderr: `--out ${out} exists: init does not overwrite it; pass --force, or choose another --out\n` });
    expect(kept).toBe('{"mine": true}\n');
    expect(forced.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).dataflows[0].name).toBe('plain');
  });

  it('refuses an --out whose directory does not exist before drafting, and says so plainly', async () => {
    // Prepare
    const sample = join(work, 'plain.csv');
    writeFileSync(sample, sampleText());
    const out = join(work, 'no-such-dir', 'config.json');

    // Act
    const { code, stderr } = await runCli(['init', '--sample', sample, '--out', out]);

    // Assess
    expect({ code, stderr }).toEqual({ code: 2, stderr: `--out ${out}: the directory ${join(work, 'no-such-dir')} does not exist; create it, or choose another --out\n` });
  });

  it('refuses a directory as --sample with a usage message, not a stack trace', async () => {
    // Act
    const { code, stderr } = await runCli(['init', '--sample', work, '--out', join(work, 'dir.json')]);

    // Assess
    expect({ code, stderr }).toEqual({ code: 2, stderr: `--sample ${work}: is a directory; give one of the vendor's files\n` });
  });

  it('does not write through a dangling symlink at --out without --force', async () => {
    // Prepare: --out is a symlink to a file that does not exist yet (existsSync follows it and says false).
    const sample = join(work, 'plain.csv');
    writeFileSync(sample, sampleText());
    const target = join(work, 'elsewhere.txt');
    const out = join(work, 'dangling.json');
    symlinkSync(target, out);

    // Act
    const { code, stderr } = await runCli(['init', '--sample', sample, '--out', out]);

    // Assess
    expect({ code, stderr }).toEqual({ code: 2, stderr: `--out ${out} exists: init does not overwrite it; pass --force, or choose another --out\n` });
    expect(existsSync(target)).toBe(false);
  });

  it('asks for --secrets for a PGP sample', async () => {
    // Prepare: the start of a binary PGP message (a public-key encrypted session key packet).
    const sample = join(work, 'events.gpg');
    writeFileSync(sample, Buffer.from([0x85, 0x01, 0x0c, 0x03, 0, 0, 0, 0]));

    // Act
    const { code, stderr } = await runCli(['init', '--sample', sample, '--out', join(work, 'pgp.json')]);

    // Assess
    expect(code).toBe(2);
    expect(stderr).toContain('The sample is PGP-encrypted: give --secrets FILE');
  });
});
