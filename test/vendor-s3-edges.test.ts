import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Stack } from 'aws-cdk-lib';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { uploadTargetOf } from '../lib/outputs';
import { parseConfig } from '../src/config/load';
import { ConfigError } from '../src/errors';
import { configDocument } from './support/factories';

const [base] = configDocument().dataflows as Array<Record<string, unknown>>;
const schedule = { cron: '0/15 * * * ? *', timeZone: 'UTC' };

/** The problems a configuration of these dataflows is refused with (none: accepted). */
function problemsOf(...dataflows: Array<Record<string, unknown>>): string[] {
  try {
    parseConfig({ dataflows: dataflows.map((d, i) => ({ ...base, name: `v${i}`, schedule, ...d })) });
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

describe('Configuration: two dataflows polling the same vendor bucket', () => {
  const polled = (source: Record<string, unknown>) => ({ source: { type: 's3', bucket: 'brand-drop', ...source } });

  it("refuses a prefix inside another dataflow's prefix in the same bucket, naming its JSON path", () => {
    // Act
    const problems = problemsOf(polled({ prefix: 'out/', processedPrefix: 'done/' }), polled({ prefix: 'out/b/', processedPrefix: 'done-b/' }));

    // Assess
    expect(problems).toEqual(['dataflows[1].source.prefix: overlaps dataflows[0].source.prefix "out/" in bucket "brand-drop": a file would be taken by both dataflows']);
  });

  it("refuses a processedPrefix or errorPrefix inside another dataflow's prefix in the same bucket: what is moved or written back there would be imported again", () => {
    // Act
    const problems = problemsOf(polled({ prefix: 'out/a/', processedPrefix: 'out/b/done/', errorPrefix: 'out/b/results/' }), polled({ prefix: 'out/b/', processedPrefix: 'done-b/' }));

    // Assess
    expect(problems.sort()).toEqual([
      'dataflows[0].source.errorPrefix: overlaps dataflows[1].source.prefix "out/b/" in bucket "brand-drop": the files dataflow "v0" puts there would be taken again by dataflow "v1"; use a prefix outside it',
      'dataflows[0].source.processedPrefix: overlaps dataflows[1].source.prefix "out/b/" in bucket "brand-drop": the files dataflow "v0" puts there would be taken again by dataflow "v1"; use a prefix outside it',
    ]);
  });

  it('accepts the same prefixes in two different buckets, and disjoint prefixes in one', () => {
    // Act
    const apart = problemsOf(polled({ prefix: 'out/', processedPrefix: 'done/' }), { source: { type: 's3', bucket: 'other-brand', prefix: 'out/', processedPrefix: 'done/' } });
    const disjoint = problemsOf(polled({ prefix: 'out/a/', processedPrefix: 'done/a/', errorPrefix: 'results/a/' }), polled({ prefix: 'out/b/', processedPrefix: 'done/b/', errorPrefix: 'results/b/' }));

    // Assess
    expect([apart, disjoint]).toEqual([[], []]);
  });
});

describe('Function: uploadTargetOf, for an S3 source whose prefix the shell would read', () => {
  /** The command's words as bash splits them, `aws` being a function that prints each argument on a line. */
  async function wordsOf(command: string): Promise<string[]> {
    const { stdout } = await promisify(execFile)('bash', ['-c', `aws() { printf '%s\\n' "$@"; }; ${command}`]);
    return stdout.split('\n').slice(0, -1);
  }

  it.each([
    ['an inbox drop', { type: 's3', prefix: "inbox/weekly events $(id)'s/" }, "s3://inbox-bucket/inbox/weekly events $(id)'s/"],
    ["the vendor's bucket", { type: 's3', bucket: 'brand-drop', prefix: 'out going/;x/', processedPrefix: 'done/' }, 's3://brand-drop/out going/;x/'],
  ])('gives %s a ready command that uploads FILE to exactly the location', async (_what, source, location) => {
    // Prepare
    const stack = new Stack();
    const inbox = new Bucket(stack, 'Inbox', { bucketName: 'inbox-bucket' });
    const flow = parseConfig({ dataflows: [{ ...base, name: 'v', schedule, source }] }).dataflows[0]!;

    // Act
    const target = uploadTargetOf(flow, inbox);
    const command = (stack.resolve(target.command) as { 'Fn::Join'?: [string, unknown[]] } | string);
    const text = typeof command === 'string' ? command : command['Fn::Join']![1].map((p) => (typeof p === 'string' ? p : 'inbox-bucket')).join('');

    // Assess
    expect(await wordsOf(text.replace('FILE', 'events_1.csv'))).toEqual(['s3', 'cp', 'events_1.csv', location]);
  });
});
