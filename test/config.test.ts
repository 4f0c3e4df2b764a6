import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataflowForKey, loadConfig, parseConfig, selectDataflow } from '../src/config/load';
import { shiftCron } from '../src/config/schema';
import { ConfigError, UnknownDataflowError } from '../src/errors';
import { configDocument } from './support/factories';

function problemsOf(document: unknown): string[] {
  try {
    parseConfig(document);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be refused');
}

describe('Function: parseConfig', () => {
  it('accepts the example configuration and applies defaults', () => {
    // Act
    const config = loadConfig(join(__dirname, '..', 'examples', 'config.json'));

    // Assess
    const flow = config.dataflows[0]!;
    expect(flow.destination.method).toBe('PUT');
    expect(flow.destination.endpoint).toBe('/api_gateway/v1/badges/import/customerBadges');
    expect(flow.destination.epochUnit).toBe('ms');
    expect(flow.csv.quote).toBe('"');
    expect(flow.mapping.earnExpiresOn.timeZone).toBe('Asia/Kolkata');
  });

  it('applies the defaults chosen for cost: batches of 1000 (the API\'s most), chunks of 10,000 records, files up to 50M records', () => {
    // Prepare: a destination that says nothing of batches or chunks.
    const document = configDocument({ csv: {}, destination: { baseUrl: 'https://eu.api.capillarytech.com', auth: { type: 'basic', usernameSecret: 'u', passwordSecret: 'p' } } });

    // Act
    const flow = parseConfig(document).dataflows[0]!;

    // Assess
    expect(flow.destination).toMatchObject({ batchSize: 1000, recordsPerWorker: 10_000, maxConcurrency: 8, maxRequestsPerMinute: 1000 });
    expect(flow.csv.maxRecords).toBe(50_000_000);
  });

  it('takes the default chunk at the slowest documented API rate (50 requests a minute): a worker still finishes in time', () => {
    // Prepare: 10 requests a worker; 8 workers share 50 a minute: 96 s of the 180 s a worker may take.
    const destination = { baseUrl: 'https://eu.api.capillarytech.com', auth: { type: 'basic', usernameSecret: 'u', passwordSecret: 'p' } };

    // Act
    const slowest = () => parseConfig(configDocument({ destination: { ...destination, maxRequestsPerMinute: 50 } }));
    const tooSlow = problemsOf(configDocument({ destination: { ...destination, maxRequestsPerMinute: 26 } }));

    // Assess
    expect(slowest).not.toThrow();
    expect(tooSlow).toEqual([expect.stringMatching(/^dataflows\[0\]\.destination\.recordsPerWorker: a worker would need 185 s for its 10 requests/)]);
  });

  it('refuses dataflows that share a destination\'s budget when their workers together could not finish a chunk in time', () => {
    // Prepare: each dataflow alone: 8 workers share 50 requests a minute, 96 s for a worker's 10 requests. Sharing one
    // budget (same base URL and secret names), files of both running at once: 16 workers share it, 192 s each.
    const destination = { baseUrl: 'https://eu.api.capillarytech.com', auth: { type: 'basic', usernameSecret: 'u', passwordSecret: 'p' }, maxRequestsPerMinute: 50 };
    const [first] = configDocument({ destination }).dataflows as Array<Record<string, unknown>>;
    const second = { ...structuredClone(first!), name: 'daily-events', source: { type: 's3', prefix: 'inbox/daily-events/', filePattern: '^events_.*\\.csv$' } };
    const otherCredentials = { ...structuredClone(second), destination: { ...destination, auth: { type: 'basic', usernameSecret: 'u2', passwordSecret: 'p2' } } };

    // Act
    const shared = problemsOf({ dataflows: [first, second] });
    const separate = () => parseConfig({ dataflows: [first, otherCredentials] });

    // Assess
    expect(shared).toEqual([0, 1].map((i) => expect.stringMatching(new RegExp(`^dataflows\\[${i}\\]\\.destination\\.recordsPerWorker: a worker would need 192 s for its 10 requests .*budget shared with`))));
    expect(separate).not.toThrow();
  });

  it('reports every problem at once, each with its JSON path', () => {
    // Prepare
    const document = configDocument({
      name: 'Weekly Events',
      source: { type: 's3', prefix: 'no-slash' },
      mapping: {
        customerId: {},
        badgeMetaId: { column: 'a', value: 'b' },
        earnEventDate: { column: 'x', timeZone: 'Mars/Olympus' },
      },
      destination: { baseUrl: 'ftp://example.com', auth: { type: 'basic', usernameSecret: 'u' }, batchSize: 5000 },
      schedule: { cron: '0 2 * * MON *' },
    });

    // Act
    const problems = problemsOf(document);

    // Assess
    const paths = problems.map((p) => p.split(':')[0]);
    expect(paths).toEqual(
      expect.arrayContaining([
        'dataflows[0].name',
        'dataflows[0].source.prefix',
        'dataflows[0].mapping.customerId',
        'dataflows[0].mapping.badgeMetaId',
        'dataflows[0].mapping.earnEventDate.timeZone',
        'dataflows[0].mapping.earnExpiresOn',
        'dataflows[0].destination.baseUrl',
        'dataflows[0].destination.auth.passwordSecret',
        'dataflows[0].destination.batchSize',
        'dataflows[0].schedule.cron',
      ]),
    );
    expect(problems).toHaveLength(10);
    expect(problems).toContain('dataflows[0].mapping.earnExpiresOn: is required');
  });

  it('takes a mapped field computed by an expression, and refuses one that does not parse or has two sources, naming its path', () => {
    // Prepare
    const [flow] = configDocument().dataflows as Array<Record<string, unknown> & { mapping: Record<string, unknown> }>;
    const withMapping = (mapping: Record<string, unknown>) => ({ dataflows: [{ ...flow, mapping: { ...flow!.mapping, ...mapping } }] });
    const good = withMapping({
      badgeMetaId: { expression: 'channel == "store" ? "6571a3b9e4b0c1a2b3c4d5e7" : badge_code' },
      earnEventDate: { expression: 'event_date + " " + event_time', format: 'dd/MM/yyyy HH:mm', timeZone: 'Asia/Kolkata' },
    });
    const bad = withMapping({
      badgeMetaId: { expression: 'channel == "store" ? "6571a3b9e4b0c1a2b3c4d5e7" :' },
      customerId: { column: 'member_id', expression: 'member_id' },
      earnEventDate: { expression: 'row["Event Date"', format: 'dd/MM/yyyy' },
      earnExpiresOn: { expression: '' },
    });

    // Act
    const config = parseConfig(good);
    const problems = problemsOf(bad);

    // Assess
    expect(config.dataflows[0]!.mapping.earnEventDate).toEqual({ expression: 'event_date + " " + event_time', format: 'dd/MM/yyyy HH:mm', timeZone: 'Asia/Kolkata' });
    expect(problems).toEqual([
      'dataflows[0].mapping.customerId: needs exactly one of "column", "value" or "expression"',
      'dataflows[0].mapping.badgeMetaId.expression: is not a valid CEL expression: Unexpected token: EOF (at character 50)',
      'dataflows[0].mapping.earnEventDate.expression: is not a valid CEL expression: Expected RBRACKET, got EOF (at character 17)',
      'dataflows[0].mapping.earnExpiresOn.expression: is empty: write a CEL expression, e.g. "badge_code" or "row[\\"Badge Code\\"]"',
    ]);
    expect(problems.every((p) => !p.includes('\n'))).toBe(true);
  });

  it('refuses two dataflows with one name or overlapping prefixes', () => {
    // Prepare
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const document = { dataflows: [flow, { ...flow, source: { type: 's3', prefix: 'inbox/weekly-events/sub/' } }] };

    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toHaveLength(2);
    expect(problems).toEqual(
      expect.arrayContaining([
        'dataflows[1].name: duplicates dataflows[0].name "weekly-events"',
        expect.stringMatching(/^dataflows\[1\]\.source\.prefix: overlaps dataflows\[0\]/),
      ]),
    );
  });

  it('refuses two dataflow names that read alike in the stack\'s output IDs', () => {
    // Prepare: "events-2" and "events2" are both Events2 once the "-" is gone.
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const document = { dataflows: [{ ...flow, name: 'events-2' }, { ...flow, name: 'events2', source: { type: 's3', prefix: 'inbox/other/' } }] };

    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toEqual(['dataflows[1].name: reads as dataflows[0].name "events-2" in the stack\'s output IDs (both Events2): rename one']);
  });

  it('takes vendor principals as account ids, root ARNs and role or user ARNs, and refuses wildcards and other forms', () => {
    // Prepare
    const withPrincipals = (principals: unknown) => configDocument({ source: { type: 's3', prefix: 'inbox/weekly-events/', vendorAccess: { principals } } });
    const valid = ['111122223333', 'arn:aws:iam::111122223333:root', 'arn:aws:iam::111122223333:role/badges-upload', 'arn:aws:iam::111122223333:user/ops/uploader', 'arn:aws-cn:iam::111122223333:root'];

    // Act
    const flow = parseConfig(withPrincipals(valid)).dataflows[0]!;
    const problems = problemsOf(withPrincipals(['*', 'arn:aws:iam::111122223333:role/*', 'arn:aws:sts::111122223333:assumed-role/r/s', '1111-2222-3333', 'arn:aws:iam::111122223333:root', 'arn:aws:iam::111122223333:root']));
    const empty = problemsOf(withPrincipals([]));

    // Assess
    expect(flow.source).toMatchObject({ vendorAccess: { principals: valid } });
    expect(problems).toEqual([
      expect.stringMatching(/^dataflows\[0\]\.source\.vendorAccess\.principals\[0\]: "\*": a wildcard is refused/),
      expect.stringMatching(/^dataflows\[0\]\.source\.vendorAccess\.principals\[1\]: "arn:aws:iam::111122223333:role\/\*": a wildcard is refused/),
      expect.stringMatching(/^dataflows\[0\]\.source\.vendorAccess\.principals\[2\]: "arn:aws:sts::111122223333:assumed-role\/r\/s" must be a 12-digit AWS account id, an account root ARN/),
      expect.stringMatching(/^dataflows\[0\]\.source\.vendorAccess\.principals\[3\]: "1111-2222-3333" must be/),
      'dataflows[0].source.vendorAccess.principals: lists a principal twice',
    ]);
    expect(empty).toEqual(['dataflows[0].source.vendorAccess.principals: must name at least one AWS principal']);
  });

  it('refuses vendorAccess on an SFTP source, which has no inbox prefix for a vendor to write to', () => {
    // Prepare
    const sftp = { type: 'sftp', host: 'h', username: 'u', passwordSecret: 'p', hostKeySha256: false, directory: '/out', processedDirectory: '/done', vendorAccess: { principals: ['111122223333'] } };

    // Act
    const problems = problemsOf(configDocument({ source: sftp }));

    // Assess
    expect(problems).toEqual([expect.stringMatching(/^dataflows\[0\]\.source: Unrecognized key: "vendorAccess"/)]);
  });

  it('refuses an errorPrefix that overlaps a dataflow\'s prefix, another errorPrefix or replays/', () => {
    // Prepare
    const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
    const s3 = (prefix: string, errorPrefix?: string) => ({ type: 's3', prefix, ...(errorPrefix ? { errorPrefix } : {}) });
    const document = {
      dataflows: [
        { ...flow, source: s3('inbox/weekly-events/', 'inbox/weekly-events/results/') },
        { ...flow, name: 'b', source: s3('inbox/b/', 'inbox/') },
        { ...flow, name: 'c', source: s3('inbox/c/', 'results/') },
        { ...flow, name: 'd', source: s3('inbox/d/', 'results/d/') },
        { ...flow, name: 'e', source: s3('inbox/e/', 'replays/e/') },
      ],
    };

    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems.sort()).toEqual(
      [
        'dataflows[0].source.errorPrefix: overlaps its own source.prefix "inbox/weekly-events/": an outcome written there would be taken as a file to import',
        ...['inbox/weekly-events/', 'inbox/b/', 'inbox/c/', 'inbox/d/', 'inbox/e/'].map((p, j) => `dataflows[1].source.errorPrefix: overlaps ${j === 1 ? 'its own source.prefix' : `dataflows[${j}].source.prefix`} "${p}": an outcome written there would be taken as a file to import`),
        'dataflows[1].source.errorPrefix: overlaps dataflows[0].source.errorPrefix "inbox/weekly-events/results/": each dataflow\'s outcomes need a prefix of their own (its vendor may read it)',
        'dataflows[3].source.errorPrefix: overlaps dataflows[2].source.errorPrefix "results/": each dataflow\'s outcomes need a prefix of their own (its vendor may read it)',
        'dataflows[4].source.errorPrefix: must not sit under replays/ (operator replays are kept there)',
      ].sort(),
    );
  });

  it('refuses a chunk that a worker could not send within its time at its share of the rate', () => {
    // Prepare: the default 10,000 records in batches of 1000 = 10 requests; 8 workers share 10 requests a minute.
    const document = configDocument({
      destination: { baseUrl: 'https://eu.api.capillarytech.com', auth: { type: 'basic', usernameSecret: 'u', passwordSecret: 'p' }, maxRequestsPerMinute: 10, maxConcurrency: 8 },
    });

    // Act
    const problems = problemsOf(document);

    // Assess
    expect(problems).toEqual([expect.stringMatching(/^dataflows\[0\]\.destination\.recordsPerWorker: a worker would need 480 s/)]);
  });

  it('takes an SFTP source with its defaults, and refuses one that is ambiguous, unpinned or would loop', () => {
    // Prepare
    const sftp = { type: 'sftp', host: 'sftp.vendor.example', username: 'brand', passwordSecret: 'sftp/pw', hostKeySha256: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s', directory: '/out', processedDirectory: '/out/done' };

    // Act
    const flow = parseConfig(configDocument({ source: sftp })).dataflows[0]!;
    const problems = problemsOf(
      configDocument({
        source: { ...sftp, privateKeySecret: 'sftp/key', processedDirectory: '/out/' },
        schedule: undefined,
      }),
    );
    const unpinned = problemsOf(configDocument({ source: { ...sftp, hostKeySha256: undefined } }));
    const badPin = problemsOf(configDocument({ source: { ...sftp, hostKeySha256: 'abc' } }));
    const noKey = problemsOf(configDocument({ source: { ...sftp, passwordSecret: undefined, privateKeyPassphraseSecret: 'x' } }));

    // Assess
    expect(flow.source).toMatchObject({ port: 22, recursive: false, requireOkFile: false, minFileAgeSeconds: 60, prefix: 'sftp/weekly-events/', filePattern: '.*' });
    expect(problems).toEqual([
      'dataflows[0].source.passwordSecret: needs exactly one of "passwordSecret" or "privateKeySecret" (Connect+ takes a password or a key, never both)',
      'dataflows[0].source.processedDirectory: must differ from "directory" (files moved there would be taken again)',
      'dataflows[0].schedule: is required for an SFTP source: the schedule is what polls the server',
    ]);
    expect(unpinned).toEqual(['dataflows[0].source.hostKeySha256: is required']);
    expect(badPin).toEqual([expect.stringMatching(/^dataflows\[0\]\.source\.hostKeySha256: /)]);
    expect(noKey).toEqual([
      'dataflows[0].source.passwordSecret: needs exactly one of "passwordSecret" or "privateKeySecret" (Connect+ takes a password or a key, never both)',
      'dataflows[0].source.privateKeyPassphraseSecret: is only used with "privateKeySecret"',
    ]);
  });

  it('takes alert settings, and refuses an arrival window it cannot schedule', () => {
    // Act
    const config = parseConfig({ ...configDocument({ alerts: { noFileWithinMinutes: 90 } }), notifications: { email: ['ops@brand.example'] } });
    const noSchedule = problemsOf(configDocument({ alerts: { noFileWithinMinutes: 30 }, schedule: undefined }));
    const pastMidnight = problemsOf(configDocument({ alerts: { noFileWithinMinutes: 90 }, schedule: { cron: '0 23 ? * MON *' } }));
    const everyHour = problemsOf(configDocument({ alerts: { noFileWithinMinutes: 10 }, schedule: { cron: '0 * ? * MON *' } }));
    const badEmail = problemsOf({ ...configDocument(), notifications: { email: ['not-an-address'] } });

    // Assess
    expect(config.dataflows[0]!.alerts).toEqual({ rejectedSharePercent: 1, retriesExhaustedPercent: 10, noFileWithinMinutes: 90 });
    expect(config.notifications.email).toEqual(['ops@brand.example']);
    expect(noSchedule).toEqual(['dataflows[0].alerts.noFileWithinMinutes: needs a schedule: the window starts at each scheduled time']);
    expect(pastMidnight).toEqual([expect.stringMatching(/^dataflows\[0\]\.alerts\.noFileWithinMinutes: .*cron "0 23 \? \* MON \*".*same day$/)]);
    expect(everyHour).toHaveLength(1);
    expect(badEmail).toEqual([expect.stringMatching(/^notifications\.email\[0\]: /)]);
    expect(shiftCron('0 2 ? * MON *', 90)).toBe('30 3 ? * MON *');
    expect(shiftCron('45 23 * * ? *', 15)).toBeUndefined();
  });

  it('refuses a delimiter or quote the text guard cannot find records by: a line end, a non-ASCII character, or the two alike', () => {
    // Act
    const problems = (csv: Record<string, string>) => {
      try {
        parseConfig(configDocument({ csv }));
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };

    // Assess
    expect(problems({ delimiter: '\n' })).toEqual([expect.stringMatching(/^dataflows\[0\]\.csv\.delimiter: must be one ASCII character other than a line end/)]);
    expect(problems({ quote: '\r' })).toEqual([expect.stringMatching(/^dataflows\[0\]\.csv\.quote: must be one ASCII/)]);
    expect(problems({ delimiter: '§' })).toHaveLength(1);
    expect(problems({ delimiter: ';', quote: ';' })).toEqual(['dataflows[0].csv.quote: delimiter and quote must be different characters']);
    expect(problems({ delimiter: '\t', quote: "'" })).toEqual([]);
  });

  it('names the file when it is not JSON', () => {
    // Prepare
    const file = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'broken.json');
    writeFileSync(file, '{ "dataflows": [');

    // Act + Assess
    expect(() => loadConfig(file)).toThrow(/broken\.json: is not valid JSON/);
  });
});

describe('Function: selectDataflow', () => {
  it('picks the only dataflow when none is named, and refuses an unknown name', () => {
    // Prepare
    const config = parseConfig(configDocument());

    // Act + Assess
    expect(selectDataflow(config).name).toBe('weekly-events');
    expect(() => selectDataflow(config, 'nope')).toThrow(UnknownDataflowError);
  });

  it('finds the dataflow of an inbox key by prefix and pattern', () => {
    // Prepare
    const config = parseConfig(configDocument());

    // Act + Assess
    expect(dataflowForKey(config, 'inbox/weekly-events/events_1.csv')?.name).toBe('weekly-events');
    expect(dataflowForKey(config, 'inbox/weekly-events/other.csv')).toBeUndefined();
    expect(dataflowForKey(config, 'inbox/else/events_1.csv')).toBeUndefined();
  });
});
