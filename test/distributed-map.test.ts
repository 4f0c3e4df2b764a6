import { StateMachine } from 'aws-local-stepfunctions';
import { putJson, readJson } from '../src/aws/s3';
import type { AslDefinition } from '../src/local/definition';
import { emulateDistributedMaps } from '../src/local/distributed-map';
import { LOCAL_BUCKETS, type LocalS3, startLocalS3 } from '../src/local/s3';

let s3: LocalS3;
beforeAll(async () => {
  s3 = await startLocalS3();
  await putJson(s3.client, LOCAL_BUCKETS.staging, 'items.json', Array.from({ length: 10 }, (_, i) => ({ n: i })));
});
afterAll(() => s3.close());

/** A Distributed Map as CDK renders one, around a single Task named Work. */
function definition(map: Record<string, unknown>): AslDefinition {
  return {
    StartAt: 'Fan',
    States: {
      Fan: {
        Type: 'Map',
        ItemReader: { Resource: 'arn:aws:states:::s3:getObject', ReaderConfig: { InputType: 'JSON' }, Parameters: { Bucket: LOCAL_BUCKETS.staging, 'Key.$': '$.key' } },
        ItemSelector: { 'value.$': '$$.Map.Item.Value', 'index.$': '$$.Map.Item.Index', 'tag.$': '$.tag' },
        ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, StartAt: 'Work', States: { Work: { Type: 'Task', Resource: 'arn:aws:lambda:us-east-1:000000000000:function:Work', End: true } } },
        ResultPath: '$.out',
        End: true,
        ...map,
      },
    },
  };
}

async function execute(def: AslDefinition, work: (input: any) => Promise<any>) {
  const emulated = emulateDistributedMaps(def, { s3: s3.client, handlers: { Work: work }, execution: { Name: 'test', StartTime: new Date().toISOString() } });
  const machine = new StateMachine(emulated.definition as never, { validationOptions: { checkPaths: false, checkArn: false } });
  return machine.run({ key: 'items.json', tag: 't' }, { overrides: { taskResourceLocalHandlers: { ...emulated.handlers, Work: work } } }).result as Promise<any>;
}

describe('Function: emulateDistributedMaps', () => {
  it('counts the billed transitions of its children: one per child started, each state entered and each retry in it', async () => {
    // Prepare: 10 children of one Task; item 3 fails once with a retried error.
    const def = definition({});
    const retried = def.States.Fan!.ItemProcessor!.States.Work as Record<string, unknown>;
    retried.Retry = [{ ErrorEquals: ['Flaky'], MaxAttempts: 1, IntervalSeconds: 0 }];
    let failedOnce = false;
    let transitions = 0;
    const work = (input: any) => {
      if (input.value.n === 3 && !failedOnce) {
        failedOnce = true;
        return Promise.reject(Object.assign(new Error('flaky'), { name: 'Flaky' }));
      }
      return Promise.resolve(input.value);
    };
    const emulated = emulateDistributedMaps(def, { s3: s3.client, handlers: { Work: work }, execution: { Name: 'test', StartTime: new Date().toISOString() }, onTransitions: (n) => (transitions += n) });
    const machine = new StateMachine(emulated.definition as never, { validationOptions: { checkPaths: false, checkArn: false } });

    // Act
    await machine.run({ key: 'items.json', tag: 't' }, { overrides: { taskResourceLocalHandlers: { ...emulated.handlers, Work: work }, retryIntervalOverrides: { Work: 0 } } }).result;

    // Assess: 10 starts, 10 Work states entered, 1 retry.
    expect(transitions).toBe(21);
  });

  it('reads the items from S3, applies ItemSelector and returns the outputs in order', async () => {
    // Act
    const result = await execute(definition({ MaxConcurrency: 3 }), async (input) => ({ doubled: input.value.n * 2, index: input.index, tag: input.tag }));

    // Assess
    expect(result.out).toEqual(Array.from({ length: 10 }, (_, i) => ({ doubled: i * 2, index: i, tag: 't' })));
    expect(result.key).toBe('items.json');
  });

  it('never runs more items at once than MaxConcurrencyPath allows', async () => {
    // Prepare
    let running = 0;
    let peak = 0;
    const work = async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 20));
      running -= 1;
      return {};
    };

    // Act
    const limited = emulateDistributedMaps(definition({ MaxConcurrencyPath: '$.limit' }), { s3: s3.client, handlers: { Work: work }, execution: { Name: 'x', StartTime: '' } });
    await new StateMachine(limited.definition as never, { validationOptions: { checkPaths: false, checkArn: false } }).run({ key: 'items.json', tag: 't', limit: 2 }, { overrides: { taskResourceLocalHandlers: { ...limited.handlers, Work: work } } }).result;

    // Assess
    expect(peak).toBe(2);
  });

  it('batches items as ItemBatcher does', async () => {
    // Act
    const result = await execute(definition({ ItemSelector: undefined, ItemBatcher: { MaxItemsPerBatch: 4, BatchInput: { 'tag.$': '$.tag' } } }), async (input) => ({ size: input.Items.length, tag: input.BatchInput.tag }));

    // Assess
    expect(result.out).toEqual([
      { size: 4, tag: 't' },
      { size: 4, tag: 't' },
      { size: 2, tag: 't' },
    ]);
  });

  it('writes results as ResultWriter does, failures included, within the tolerated share', async () => {
    // Act
    const result = await execute(
      definition({ ToleratedFailurePercentage: 20, ResultWriter: { Resource: 'arn:aws:states:::s3:putObject', Parameters: { Bucket: LOCAL_BUCKETS.staging, Prefix: 'results' } } }),
      async (input) => {
        if (input.index === 3) throw Object.assign(new Error('boom'), { name: 'WorkError' });
        return { ok: input.index };
      },
    );

    // Assess
    const manifest = await readJson<any>(s3.client, LOCAL_BUCKETS.staging, result.out.ResultWriterDetails.Key);
    const succeeded = await readJson<any[]>(s3.client, LOCAL_BUCKETS.staging, manifest.ResultFiles.SUCCEEDED[0].Key);
    const failed = await readJson<any[]>(s3.client, LOCAL_BUCKETS.staging, manifest.ResultFiles.FAILED[0].Key);
    expect(succeeded).toHaveLength(9);
    expect(JSON.parse(succeeded![0].Output)).toEqual({ ok: 0 });
    expect(failed).toEqual([expect.objectContaining({ Error: 'WorkError', Cause: 'boom', Status: 'FAILED' })]);
  });

  it('fails the Map with States.ExceedToleratedFailureThreshold beyond the tolerated share', async () => {
    // Act
    const outcome = execute(definition({ ToleratedFailurePercentage: 10 }), async (input) => {
      if (input.index < 2) throw new Error('boom');
      return {};
    });

    // Assess
    await expect(outcome).rejects.toMatchObject({ cause: expect.objectContaining({ name: 'States.ExceedToleratedFailureThreshold' }) });
  });

  it('leaves inline Map states to the engine', () => {
    // Prepare
    const inline = definition({});
    (inline.States.Fan!.ItemProcessor as any).ProcessorConfig = { Mode: 'INLINE' };

    // Act
    const emulated = emulateDistributedMaps(inline, { s3: s3.client, handlers: {}, execution: { Name: 'x', StartTime: '' } });

    // Assess
    expect(emulated.definition).toEqual(inline);
    expect(Object.keys(emulated.handlers)).toEqual([]);
  });
});
