import { Metrics } from '@aws-lambda-powertools/metrics';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { METRICS, type MetricsSink } from '../steps/deps';

/** The service name Powertools adds to every metric as the `service` dimension (and the alarms match on). */
export const SERVICE_NAME = 'badges-import';

/**
 * Metrics as CloudWatch Embedded Metric Format lines through Powertools: each value is flushed at once as its own
 * line, with the dimensions `service` and `dataflow` (and any the step adds, e.g. `stage` and `code`).
 */
export function powertoolsMetrics(metrics = new Metrics({ namespace: METRICS.namespace, serviceName: SERVICE_NAME })): MetricsSink {
  return (name, unit, value, dataflow, dimensions) => {
    const single = metrics.singleMetric();
    single.addDimension('dataflow', dataflow);
    for (const [key, dimension] of Object.entries(dimensions ?? {})) single.addDimension(key, dimension);
    single.addMetric(name, unit, value);
  };
}

/** Publishes a per-file notification to the alerts topic. */
export function snsNotifier(sns: SNSClient, topicArn: string): (subject: string, message: string) => Promise<void> {
  return async (subject, message) => {
    await sns.send(new PublishCommand({ TopicArn: topicArn, Subject: subject, Message: message }));
  };
}
