import { Duration, TimeZone, Validations } from 'aws-cdk-lib';
import { EventField, Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke as ScheduleLambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { Config } from '../src/config/schema';

export interface TriggersProps {
  config: Config;
  inbox: IBucket;
  /** The sweep function, which every trigger invokes. */
  sweep: IFunction;
}

/**
 * What starts runs: for each dataflow an EventBridge rule on the inbox's "Object Created" events under its prefix, and
 * its schedule if it has one, both through the sweep. Created in `scope` (the stack), so their IDs stay as they were.
 * Returns the queue that failed deliveries land in (the arrival checks use it too).
 */
export function buildTriggers(scope: Construct, { config, inbox, sweep }: TriggersProps): Queue {
  // Failed deliveries of triggers land here instead of vanishing.
  const deadLetters = new Queue(scope, 'TriggerDeadLetters', { encryption: QueueEncryption.SQS_MANAGED, enforceSSL: true, retentionPeriod: Duration.days(14) });
  Validations.of(deadLetters).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'This queue is itself the dead-letter queue of the triggers.' });

  for (const flow of config.dataflows) {
    new Rule(scope, `Upload-${flow.name}`, {
      description: `Starts the workflow for objects created under s3://…/${flow.source.prefix} (dataflow ${flow.name})`,
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: { bucket: { name: [inbox.bucketName] }, object: { key: [{ prefix: flow.source.prefix }] } },
      },
      // Through the sweep function, which names the execution after the object (key and ETag), as the schedule's
      // sweep does: Step Functions then refuses a second execution of an object both of them found.
      targets: [
        new LambdaFunction(sweep, {
          event: RuleTargetInput.fromObject({
            dataflow: flow.name,
            key: EventField.fromPath('$.detail.object.key'),
            etag: EventField.fromPath('$.detail.object.etag'),
            versionId: EventField.fromPath('$.detail.object.version-id'),
          }),
          deadLetterQueue: deadLetters,
          retryAttempts: 8,
        }),
      ],
    });
    if (flow.schedule) {
      new Schedule(scope, `Schedule-${flow.name}`, {
        description: `Sweeps ${flow.source.prefix} for files of dataflow ${flow.name}`,
        schedule: ScheduleExpression.expression(`cron(${flow.schedule.cron})`, TimeZone.of(flow.schedule.timeZone)),
        target: new ScheduleLambdaInvoke(sweep, { input: ScheduleTargetInput.fromObject({ dataflow: flow.name }), deadLetterQueue: deadLetters, retryAttempts: 8 }),
      });
    }
  }
  return deadLetters;
}
