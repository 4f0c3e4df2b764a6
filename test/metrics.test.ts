import { powertoolsMetrics } from '../src/aws/metrics';
import { readEmf } from '../src/local/lambda';

/** The EMF lines Powertools writes to stdout (where Lambda hands them to CloudWatch) while `emit` runs. */
function emfLinesOf(emit: () => void): string[] {
  const lines: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
  try {
    emit();
  } finally {
    write.mockRestore();
  }
  return lines;
}

describe('Function: powertoolsMetrics', () => {
  it('writes each value as an Embedded Metric Format line in namespace BadgesImport, by service and dataflow', () => {
    // Prepare: Powertools writes EMF documents to stdout, where Lambda hands them to CloudWatch.
    const lines: string[] = [];
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
    try {
      // Act
      const sink = powertoolsMetrics();
      sink('RecordsRejected', 'Count', 7, 'weekly-events', { stage: 'api', code: '1054' });
      sink('ApiLatency', 'Milliseconds', 12.5, 'weekly-events');
    } finally {
      write.mockRestore();
    }

    // Assess
    const documents = lines.map((line) => JSON.parse(line) as Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string; Unit: string }> }> } });
    expect(documents).toHaveLength(2);
    expect(documents[0]!._aws.CloudWatchMetrics).toEqual([{ Namespace: 'BadgesImport', Dimensions: [['service', 'dataflow', 'stage', 'code']], Metrics: [{ Name: 'RecordsRejected', Unit: 'Count' }] }]);
    expect(documents[0]).toMatchObject({ service: 'badges-import', dataflow: 'weekly-events', stage: 'api', code: '1054', RecordsRejected: 7 });
    expect(documents[1]!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service', 'dataflow']]);
    expect(documents[1]).toMatchObject({ ApiLatency: 12.5, dataflow: 'weekly-events' });
  });

  it('writes FilesFailed once more by service alone, the metric the stack-wide WorkflowFailed alarm reads', () => {
    // Prepare
    // Act
    const lines = emfLinesOf(() => powertoolsMetrics()('FilesFailed', 'Count', 1, 'weekly-events'));

    // Assess
    const documents = lines.map((line) => JSON.parse(line) as Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } });
    expect(documents.map((d) => d._aws.CloudWatchMetrics[0]!.Dimensions)).toEqual([[['service', 'dataflow']], [['service']]]);
    expect(documents[1]).toMatchObject({ service: 'badges-import', FilesFailed: 1 });
    expect(documents[1]).not.toHaveProperty('dataflow');
  });

  it('is read back by the twin once per value: the stack-wide line is not a dataflow\'s second value', () => {
    // Prepare
    const lines = emfLinesOf(() => powertoolsMetrics()('FilesFailed', 'Count', 1, 'weekly-events'));
    const read: unknown[][] = [];

    // Act
    for (const line of lines) readEmf(line, (...call) => void read.push(call));

    // Assess
    expect(read).toEqual([['FilesFailed', 'Count', 1, 'weekly-events', undefined]]);
  });
});
