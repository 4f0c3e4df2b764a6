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

  it('refuses a chunk that a worker could not send within its time at its share of the rate', () => {
    // Prepare: 1000 records in batches of 100 = 10 requests; 8 workers share 10 requests a minute.
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
