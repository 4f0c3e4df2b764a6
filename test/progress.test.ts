import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { loadConfig } from '../src/config/load';
import { ProgressTracker, progressDisplay, progressLine } from '../src/cli/progress';
import { runLocal } from '../src/local/runner';
import { startLocalServices, stopLocalServices } from './support/local';

const examples = join(__dirname, '..', 'examples');

describe('Class: ProgressTracker', () => {
  it('counts records read, sent, accepted and rejected, with the rate and the time left of the phase under way', () => {
    // Prepare: a clock the test moves.
    let now = 0;
    const tracker = new ProgressTracker(() => now);

    // Act + Assess: staging at 50,000 records a second.
    now = 2000;
    tracker.update({ step: 'stage', records: 100_000, rejected: 10, done: false });
    expect(tracker.snapshot()).toMatchObject({ phase: 'staging', read: 100_000, validationRejected: 10, rate: 50_000 });
    now = 3000;
    tracker.update({ step: 'stage', records: 120_000, rejected: 20, done: true });
    // Sending: chunk events carry their batch and the chunk's running totals.
    now = 13_000;
    tracker.update({ step: 'send', chunk: 0, records: 1000, accepted: 990, rejected: 10 });
    tracker.update({ step: 'send', chunk: 1, records: 1000, accepted: 1000, rejected: 0 });
    tracker.update({ step: 'send', chunk: 0, records: 1000, accepted: 1985, rejected: 15 });
    const s = tracker.snapshot();
    expect(s).toMatchObject({ phase: 'sending', toSend: 119_980, sent: 3000, accepted: 2985, apiRejected: 15, rate: 300 });
    expect(s.etaSeconds).toBeCloseTo((119_980 - 3000) / 300);
    expect(progressLine(s)).toBe('sending: 3,000/119,980 sent, 2,985 accepted, 35 rejected (300/s, ETA 6m30s)');
  });
});

describe('Class: ProgressTracker, with a filter', () => {
  it('does not count the records the filter left out as records to send', () => {
    // Prepare
    let now = 0;
    const tracker = new ProgressTracker(() => now);

    // Act: 100 read, 5 rejected by validation, 30 filtered; then 65 sent.
    tracker.update({ step: 'stage', records: 100, rejected: 5, filtered: 30, done: true });
    now = 1000;
    tracker.update({ step: 'send', chunk: 0, records: 65, accepted: 65, rejected: 0 });

    // Assess: all sent, nothing left.
    const s = tracker.snapshot();
    expect(s).toMatchObject({ toSend: 65, sent: 65, filtered: 30 });
    expect(progressLine(s)).toBe('sent: 65/65 sent, 65 accepted, 5 rejected (65/s)');
  });
});

describe('Function: progressDisplay', () => {
  it('prints plain lines for a run when stderr is not a terminal: staged, then the sending totals', async () => {
    // Prepare
    const services = await startLocalServices({ knownBadgeIds: ['6571a3b9e4b0c1a2b3c4d5e6', '6571a3b9e4b0c1a2b3c4d5e7', '6571a3b9e4b0c1a2b3c4d5e8'] });
    const lines: string[] = [];
    const stream = { write: (text: string) => (lines.push(text), true), isTTY: false } as unknown as NodeJS.WriteStream;
    const configFile = join(examples, 'config.json');
    const config = loadConfig(configFile);
    try {
      // Act: the demo file through the local workflow.
      const result = await runLocal({
        config,
        configFile,
        dataflow: config.dataflows[0]!,
        file: join(examples, 'events_2026-11-23.csv'),
        secrets: StaticSecretsProvider.fromFile(join(examples, 'secrets.json')),
        s3: services.s3,
        sandbox: services.sandbox,
        outDir: mkdtempSync(join(tmpdir(), 'progress-')),
        progress: progressDisplay({ live: false, stream }),
      });

      // Assess: the lines agree with the report.
      const { rows } = result.report;
      // Staging lines (a range worker's count, printed when staging outlasts the interval: a cold twin on a busy
      // machine) may come first; then one staged line, whose totals are the report's.
      const staged = lines.findIndex((l) => l.startsWith('staged:'));
      expect(lines.slice(0, staged).every((l) => /^staging: read \d+ records, \d+ rejected by validation \(\d+\/s\)\n$/.test(l))).toBe(true);
      expect(lines[staged]).toBe(`staged: ${rows.total} records read, ${rows.valid} to send, ${rows.total - rows.valid} rejected by validation\n`);
      expect(lines[lines.length - 1]).toMatch(new RegExp(`^sent: ${rows.valid}/${rows.valid} sent, ${rows.accepted} accepted, ${rows.rejected} rejected \\(\\d+/s\\)\\n$`));
    } finally {
      await stopLocalServices(services);
    }
  });

  it('draws a live bar with the same figures on a terminal', () => {
    // Prepare: a stream that says it is a terminal.
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 160, cursorTo: () => true, clearLine: () => true, moveCursor: () => true }) as unknown as NodeJS.WriteStream;
    let output = '';
    (stream as unknown as PassThrough).on('data', (d: Buffer) => (output += d.toString()));
    let now = 0;
    const display = progressDisplay({ live: true, stream, now: () => now });

    // Act
    display({ step: 'stage', records: 40, rejected: 6, done: true });
    now = 1000;
    display({ step: 'send', chunk: 0, records: 17, accepted: 17, rejected: 0 });
    display.stop();

    // Assess
    expect(output).toContain('sending: 17/34 sent, 17 accepted, 6 rejected (17/s, ETA 1s)');
    expect(output).toMatch(/\[=+-+\] 50% sending/);
  });
});
