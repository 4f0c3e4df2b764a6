import { Metrics } from '@aws-lambda-powertools/metrics';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { METRICS, SERVICE_NAME, STACK_WIDE_METRICS } from '../contracts';
import type { MetricsSink } from '../ports';

// Defined in src/contracts.ts (the stack names it in every Lambda's environment and alarm); re-exported for the Lambdas.
export { SERVICE_NAME } from '../contracts';

/**
 * Metrics as CloudWatch Embedded Metric Format lines through Powertools: each value is flushed at once as its own
 * line, with the dimensions `service` and `dataflow` (and any the step adds, e.g. `stage` and `code`). A stack-wide
 * metric (STACK_WIDE_METRICS) is written once more with `service` alone.
 */
export function powertoolsMetrics(metrics = new Metrics({ namespace: METRICS.namespace, serviceName: SERVICE_NAME })): MetricsSink {
  return (name, unit, value, dataflow, dimensions) => {
    const single = metrics.singleMetric();
    single.addDimension('dataflow', dataflow);
    for (const [key, dimension] of Object.entries(dimensions ?? {})) single.addDimension(key, dimension);
    single.addMetric(name, unit, value);
    if (STACK_WIDE_METRICS.includes(name) && dimensions === undefined) metrics.singleMetric().addMetric(name, unit, value);
  };
}

/** Publishes a per-file notification to the alerts topic. */
export function snsNotifier(sns: SNSClient, topicArn: string): (subject: string, message: string) => Promise<void> {
  return async (subject, message) => {
    await sns.send(new PublishCommand({ TopicArn: topicArn, Subject: subject, Message: message }));
  };
}
