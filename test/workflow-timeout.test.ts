import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { BadgesImportStack } from '../lib/badges-import-stack';
import { parseConfig } from '../src/config/load';
import { STAGING_ALLOWANCE_SECONDS, checkFileRecords, runSeconds, workflowTimeout } from '../src/config/limits';
import { FileTooLargeError } from '../src/errors';
import { configDocument, makeConfig, makeDataflow } from './support/factories';
import { writeConfigFile } from './support/stack-configs';

/** A configuration with one dataflow sending at `destination` (over the test destination), its files up to `maxRecords`. */
function configWith(destination: Record<string, unknown>, maxRecords?: number) {
  const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
  return {
    dataflows: [{ ...flow, csv: { delimiter: ',', ...(maxRecords !== undefined ? { maxRecords } : {}) }, destination: { ...(flow!.destination as object), ...destination } }],
  };
}

/** The stack for a configuration document, synthesized without bundling the Lambdas (only the template matters). */
function synthesize(document: Record<string, unknown>, stagingRetentionDays?: number) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new BadgesImportStack(app, 'TimeoutTest', { config: parseConfig(document), configFile: writeConfigFile(document), ...(stagingRetentionDays ? { stagingRetentionDays } : {}) });
  return { stack, template: Template.fromStack(stack) };
}

describe('Function: workflowTimeout', () => {
  it('gives a 50M-row file at 1000 requests a minute of 1000 records the staging allowance and twice its 50 minutes of sending', () => {
    // Prepare
    const config = makeConfig({ csv: { delimiter: ',' }, destination: { ...(configDocument().dataflows as Array<{ destination: object }>)[0]!.destination, batchSize: 1000, maxRequestsPerMinute: 1000, recordsPerWorker: 20000 } });

    // Act
    const timeout = workflowTimeout(config);

    // Assess: 50,000 requests at 1000 a minute are 3000 s; twice that, plus the allowance.
    expect(config.dataflows[0]!.csv.maxRecords).toBe(50_000_000);
    expect(timeout).toEqual({ seconds: STAGING_ALLOWANCE_SECONDS + 6000, neededSeconds: STAGING_ALLOWANCE_SECONDS + 6000, ceilingSeconds: 7 * 86400, capped: false, decidedBy: [{ dataflow: 'weekly-events', maxRecords: 50_000_000 }] });
  });

  it('grows with csv.maxRecords and shrinks with the rate and the batch size', () => {
    // Prepare
    const base = { batchSize: 100, maxRequestsPerMinute: 600, recordsPerWorker: 1000 };

    // Act
    const at = (destination: Record<string, number>, maxRecords: number) => workflowTimeout(parseConfig(configWith(destination, maxRecords))).seconds;

    // Assess: 1M records in batches of 100 at 600 a minute: 10,000 requests, 1000 s, twice.
    expect(at(base, 1_000_000)).toBe(STAGING_ALLOWANCE_SECONDS + 2000);
    expect(at(base, 2_000_000)).toBe(STAGING_ALLOWANCE_SECONDS + 4000);
    expect(at({ ...base, maxRequestsPerMinute: 1200 }, 1_000_000)).toBe(STAGING_ALLOWANCE_SECONDS + 1000);
    expect(at({ ...base, batchSize: 1000 }, 1_000_000)).toBe(STAGING_ALLOWANCE_SECONDS + 200);
  });

  it('counts the largest files of dataflows sending to one API together, at the slower rate (they share its budget)', () => {
    // Prepare
    const [flow] = configWith({ batchSize: 100, maxRequestsPerMinute: 600 }, 1_000_000).dataflows;
    const second = { ...flow, name: 'second', source: { type: 's3', prefix: 'inbox/second/' }, destination: { ...flow!.destination, maxRequestsPerMinute: 300 } };
    const elsewhere = { ...second, name: 'elsewhere', source: { type: 's3', prefix: 'inbox/elsewhere/' }, destination: { ...second.destination, baseUrl: 'https://us.api.capillarytech.com' } };

    // Act
    const shared = workflowTimeout(parseConfig({ dataflows: [flow, second] }));
    const apart = workflowTimeout(parseConfig({ dataflows: [flow, elsewhere] }));

    // Assess: together 20,000 requests at 300 a minute (4000 s); apart, the slower one alone (2000 s).
    expect(shared.neededSeconds).toBe(STAGING_ALLOWANCE_SECONDS + 8000);
    expect(shared.decidedBy.map((d) => d.dataflow)).toEqual(['weekly-events', 'second']);
    expect(apart.neededSeconds).toBe(STAGING_ALLOWANCE_SECONDS + 4000);
    expect(apart.decidedBy.map((d) => d.dataflow)).toEqual(['elsewhere']);
  });

  it('caps the timeout at the staging retention, saying so, when the largest file would need longer', () => {
    // Prepare: 50M records in batches of 100 at 100 a minute: 500,000 requests, 83 hours, 167 with the margin.
    const config = parseConfig(configWith({ batchSize: 100, maxRequestsPerMinute: 100, recordsPerWorker: 1000 }));

    // Act
    const week = workflowTimeout(config);
    const month = workflowTimeout(config, { stagingRetentionDays: 30 });

    // Assess
    expect(week).toMatchObject({ seconds: 7 * 86400, ceilingSeconds: 7 * 86400, capped: true });
    expect(week.neededSeconds).toBe(STAGING_ALLOWANCE_SECONDS + 600_000);
    expect(month).toMatchObject({ seconds: STAGING_ALLOWANCE_SECONDS + 600_000, capped: false });
  });

  it('never goes past a Standard workflow\'s year', () => {
    // Act
    const timeout = workflowTimeout(parseConfig(configWith({ batchSize: 1, maxRequestsPerMinute: 1, recordsPerWorker: 1, maxConcurrency: 1 }, 1_000_000_000)), { stagingRetentionDays: 3650 });

    // Assess
    expect(timeout).toMatchObject({ seconds: 365 * 86400, capped: true });
  });
});

describe('Function: runSeconds', () => {
  it('is what one file of a dataflow needs, comparable with the timeout', () => {
    // Prepare
    const flow = makeDataflow({ destination: { ...(configDocument().dataflows as Array<{ destination: object }>)[0]!.destination, batchSize: 1000, maxRequestsPerMinute: 1000 } });

    // Act
    const fits = runSeconds(flow, flow.csv.maxRecords) <= workflowTimeout({ dataflows: [flow] }).seconds;
    const tooLong = runSeconds(flow, flow.csv.maxRecords + 1000) <= workflowTimeout({ dataflows: [flow] }).seconds;

    // Assess
    expect(fits).toBe(true);
    expect(tooLong).toBe(false);
  });
});

describe('Function: checkFileRecords', () => {
  it('refuses a file over csv.maxRecords with FILE_TOO_LARGE, naming the setting, and takes one at the limit', () => {
    // Prepare
    const flow = makeDataflow({ csv: { delimiter: ',', maxRecords: 1000 } });

    // Act
    const over = (() => {
      try {
        checkFileRecords(flow, 1001);
      } catch (error) {
        return error;
      }
      return undefined;
    })();

    // Assess
    expect(() => checkFileRecords(flow, 1000)).not.toThrow();
    expect(over).toBeInstanceOf(FileTooLargeError);
    expect(over).toMatchObject({ code: 'FILE_TOO_LARGE', message: expect.stringContaining('more than 1000 records (csv.maxRecords of dataflow weekly-events); nothing was sent') });
  });

  it('is refused in the configuration when csv.maxRecords is not a positive integer, naming its path', () => {
    // Act
    const parse = () => parseConfig(configWith({}, 0));

    // Assess
    expect(parse).toThrow(/dataflows\[0\]\.csv\.maxRecords/);
  });
});

describe('Stack: the workflow\'s timeout', () => {
  it('gives the state machine the timeout its configuration needs, not a fixed day', () => {
    // Prepare
    const document = configWith({ batchSize: 100, maxRequestsPerMinute: 600, recordsPerWorker: 1000 }, 1_000_000);

    // Act
    const { template, stack } = synthesize(document);

    // Assess
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', { DefinitionString: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(`"TimeoutSeconds":${STAGING_ALLOWANCE_SECONDS + 2000}[,}]`)])] }) });
    expect(stack.timeout.capped).toBe(false);
    Annotations.fromStack(stack).hasNoWarning('*', Match.stringLikeRegexp('would time out'));
  });

  it('caps it at the staging retention and warns at synthesis when the largest file would not fit', () => {
    // Prepare
    const document = configWith({ batchSize: 100, maxRequestsPerMinute: 100, recordsPerWorker: 1000 });

    // Act
    const { template, stack } = synthesize(document, 5);

    // Assess
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', { DefinitionString: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([Match.stringLikeRegexp(`"TimeoutSeconds":${5 * 86400}[,}]`)])] }) });
    template.hasResourceProperties('AWS::S3::Bucket', { LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ ExpirationInDays: 5 })]) } });
    Annotations.fromStack(stack).hasWarning('*', Match.stringLikeRegexp('weekly-events \\(csv.maxRecords 50000000\\) need 168\\.7 h .* more than the 120\\.0 h a run may last'));
  });
});
