import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { parseConfig } from '../src/config/load';
import { type EventBridgeEvent, deliveriesOf, matchRule, objectCreatedEvent, scheduleInput, targetInput, triggersOf } from '../src/local/events';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { configDocument } from './support/factories';

const fixtures = join(__dirname, 'fixtures', 'events');
/** AWS's own example of the event (see fixtures/events/README.md), moved into the stack's inbox under `key`. */
function documentedEvent(key: string, bucket = LOCAL_BUCKETS.inbox): EventBridgeEvent {
  const event = JSON.parse(readFileSync(join(fixtures, 's3-object-created.json'), 'utf8')) as EventBridgeEvent;
  const detail = event.detail as { bucket: { name: string }; object: { key: string } };
  detail.bucket.name = bucket;
  detail.object.key = key;
  return event;
}

// Two S3 dataflows, one without a schedule: synthesized once (bundling skipped, as the local runner does).
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const document = { dataflows: [flow, { ...flow, name: 'offline-event', source: { type: 's3', prefix: 'inbox/offline-event/' }, schedule: undefined }] };
const configFile = join(mkdtempSync(join(tmpdir(), 'events-')), 'config.json');
writeFileSync(configFile, JSON.stringify(document));
const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'events-synth-')), context: { 'aws:cdk:bundling-stacks': [] } });
const stack = new BadgesImportStack(app, 'BadgesImport', { config: parseConfig(document), configFile });
const triggers = triggersOf(app.synth().getStackByName(stack.stackName).template as never, LOCAL_BUCKETS);

function shapeOf(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value;
  if (Array.isArray(value)) return value.map(shapeOf);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shapeOf(v)]).sort(([a], [b]) => String(a).localeCompare(String(b))));
}

describe('Function: objectCreatedEvent', () => {
  it('builds the event S3 sends EventBridge, in the shape AWS documents', () => {
    // Prepare
    const documented = documentedEvent('inbox/weekly-events/events_a.csv');

    // Act
    const built = objectCreatedEvent({ bucket: 'inbox', key: 'inbox/weekly-events/events_a.csv', size: 5, etag: '"b1946ac92492d2347c6235b4d2611184"', versionId: 'v1', sequencer: '617f08299329d189', reason: 'PutObject', requester: '123456789012' });

    // Assess
    expect(shapeOf(built)).toEqual(shapeOf(documented));
    expect(built.detail).toMatchObject({ bucket: { name: 'inbox' }, object: { key: 'inbox/weekly-events/events_a.csv', etag: 'b1946ac92492d2347c6235b4d2611184', 'version-id': 'v1' } });
  });
});

describe('Function: deliveriesOf, with the synthesized stack', () => {
  it('delivers the documented event for a key under a dataflow prefix to the sweep, as the upload rule transforms it', () => {
    // Prepare
    const event = documentedEvent('inbox/weekly-events/events_a.csv');

    // Act
    const deliveries = deliveriesOf(triggers, event);

    // Assess: one delivery, to the sweep function, with what the sweep expects.
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.functionId).toBe(triggers.functions.sweep);
    expect(deliveries[0]!.input).toMatchObject({ dataflow: 'weekly-events', key: 'inbox/weekly-events/events_a.csv', etag: 'b1946ac92492d2347c6235b4d2611184' });
    const input = deliveries[0]!.input as Record<string, unknown>;
    if ('versionId' in input) expect(input.versionId).toBe('IYV3p45BT0ac8hjHg1houSdS1a.Mro8e');
  });

  it('delivers nothing for another prefix, another bucket or another kind of event', () => {
    // Prepare
    const otherPrefix = documentedEvent('inbox/elsewhere/events_a.csv');
    const otherBucket = documentedEvent('inbox/weekly-events/events_a.csv', 'amzn-s3-demo-bucket1');
    const deleted = { ...documentedEvent('inbox/weekly-events/events_a.csv'), 'detail-type': 'Object Deleted' };

    // Act
    const deliveries = [otherPrefix, otherBucket, deleted].map((e) => deliveriesOf(triggers, e));

    // Assess
    expect(deliveries).toEqual([[], [], []]);
    expect(deliveriesOf(triggers, documentedEvent('inbox/offline-event/x.csv')).map((d) => (d.input as { dataflow: string }).dataflow)).toEqual(['offline-event']);
  });

  it('reads the Scheduler input of each dataflow with a schedule, and delivers it unchanged', () => {
    // Act
    const sweeps = triggers.schedules.filter((s) => s.functionId === triggers.functions.sweep);

    // Assess
    expect(sweeps.map((s) => scheduleInput(s.input, { scheduleArn: 'arn:aws:scheduler:::schedule/x', scheduledTime: new Date() }))).toEqual([{ dataflow: 'weekly-events' }]);
    expect(sweeps[0]).toMatchObject({ expression: 'cron(0 2 ? * MON *)', timeZone: 'Asia/Kolkata' });
  });
});

describe('Function: scheduleInput', () => {
  it('replaces the context attributes in the documented target input', () => {
    // Prepare
    const target = JSON.parse(readFileSync(join(fixtures, 'scheduler-target.json'), 'utf8')) as { Input: string };

    // Act
    const payload = scheduleInput(target.Input, { scheduleArn: 'arn:aws:scheduler:us-west-2:123456789012:schedule/default/your-schedule', scheduledTime: new Date('2022-03-22T18:59:43.000Z') });

    // Assess
    expect(payload).toEqual({ MessageBody: '2022-03-22T18:59:43Z', QueueUrl: 'https://sqs.us-west-2.amazonaws.com/123456789012/scheduler-cli-test' });
  });
});

describe('Function: matchRule', () => {
  it('matches exact values, prefixes, suffixes, anything-but, exists and numeric ranges, field by field', () => {
    // Prepare
    const event = documentedEvent('inbox/weekly-events/events_a.csv');

    // Act + Assess
    expect(matchRule({ source: ['aws.s3'], detail: { object: { key: [{ prefix: 'inbox/' }] } } }, event)).toBe(true);
    expect(matchRule({ source: ['aws.ec2'] }, event)).toBe(false);
    expect(matchRule({ detail: { object: { key: [{ suffix: '.CSV' }] } } }, event)).toBe(false);
    expect(matchRule({ detail: { object: { key: [{ suffix: { 'equals-ignore-case': '.CSV' } }] } } }, event)).toBe(true);
    expect(matchRule({ detail: { reason: [{ 'anything-but': ['CopyObject'] }] } }, event)).toBe(true);
    expect(matchRule({ detail: { object: { 'version-id': [{ exists: false }] } } }, event)).toBe(false);
    expect(matchRule({ detail: { object: { missing: [{ exists: false }] } } }, event)).toBe(true);
    expect(matchRule({ detail: { object: { size: [{ numeric: ['>', 0, '<=', 5] }] } } }, event)).toBe(true);
    expect(matchRule({ resources: ['arn:aws:s3:::amzn-s3-demo-bucket1'] }, event)).toBe(true);
    expect(matchRule({ detail: { object: { key: [{ wildcard: 'inbox/*/events_*.csv' }] } } }, event)).toBe(true);
  });
});

describe('Function: targetInput', () => {
  it('fills a placeholder outside quotes with the JSON value (null when absent) and inside quotes with its text', () => {
    // Prepare
    const event = documentedEvent('inbox/weekly-events/a "quoted" name.csv');
    const target = {
      InputTransformer: {
        InputPathsMap: { key: '$.detail.object.key', size: '$.detail.object.size', none: '$.detail.object.nothing', first: '$.resources[0]' },
        InputTemplate: '{"key":<key>,"size":<size>,"none":<none>,"said":"<key> has <size> bytes","rule":"<aws.events.rule-name>","first":<first>}',
      },
    };

    // Act
    const input = targetInput(target, event, { name: 'Upload' });

    // Assess
    expect(input).toEqual({ key: 'inbox/weekly-events/a "quoted" name.csv', size: 5, none: null, said: 'inbox/weekly-events/a "quoted" name.csv has 5 bytes', rule: 'Upload', first: 'arn:aws:s3:::amzn-s3-demo-bucket1' });
    expect(targetInput({ Input: '{"dataflow":"x"}' }, event)).toEqual({ dataflow: 'x' });
    expect(targetInput({ InputPath: '$.detail.bucket' }, event)).toEqual({ name: 'inbox' });
    expect(targetInput({}, event)).toBe(event);
  });
});
