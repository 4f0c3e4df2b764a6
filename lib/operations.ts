import { Duration, Stack, TimeZone } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  type IMetric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke as ScheduleLambdaInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type Config, type Dataflow, shiftCron } from '../src/config/schema';
import { METRICS, type MetricName, SERVICE_NAME } from '../src/contracts';

export interface OperationsProps {
  config: Config;
}

/** What the operations watch: added once the workflow and its triggers exist. */
export interface WatchedProps {
  stateMachine: StateMachine;
  sweepFunction: IFunction;
  /** Where triggers that cannot be delivered go. */
  triggerDlq: IQueue;
}

/** What an alarm is for and what to do, as its description (shown in the console and in the alarm's e-mail). */
const ADVICE = {
  fileFailed:
    'A file of this dataflow FAILED. Its report (reports/<dataflow>/<runId>/report.json) says why (error.code) and whether records were sent before the failure (sentBeforeFailure). Nothing sent: fix the cause and deliver the file again. Something sent: do NOT deliver it again (its content stays claimed; a forced import would issue those badges twice): fix the cause and replay its rejected-records file.',
  recordsUnaccounted:
    'A run of this dataflow could not account for all of its records (read is not accepted + rejected): it is reported FAILED with RECORDS_UNACCOUNTED. This is a defect, not bad data. Do not deliver the file again: compare its records with the rejected file and the customers\' badges before replaying anything.',
  retriesExhausted: 'A file had at least the configured share of its records not issued after every retry (RETRIES_EXHAUSTED): the API was throttling, failing or unreachable for longer than the retries last. Check the API\'s health and the dataflow\'s rate settings (maxRequestsPerMinute, maxConcurrency), then replay the rejected-records file: these records were not issued.',
  rejectedShare: 'A file had at least the configured share of its records rejected. Read the rejected-records file named in its report: fix the data (validation rejects) or the setup (e.g. 1054: unknown badge ids), then replay it.',
  noFile: 'No file arrived for this dataflow within the window after its scheduled time. Ask the vendor, or check the source (S3 prefix or SFTP server) and the sweep function\'s log.',
  workflowFailed: 'A run of the workflow failed for another reason than a FAILED file (a step exhausted its retries, a bug). Open the failed execution in the Step Functions console; its records may need a replay.',
  workflowTimedOut: "A run of the workflow exceeded its timeout (sized for a file of csv.maxRecords records at the dataflow's rate, at most the staging retention). Finalize never ran: its records are in no report. Do not start the file again whole (sent chunks would be sent twice); docs/operations.md (WorkflowTimedOut) says how to send only what was not sent.",
  sweepFailed: 'The sweep function failed: uploads or scheduled sweeps may not have started runs, or an SFTP poll could not reach or trust its server. Read its log; the next schedule tries again.',
} as const;

/**
 * Metrics, alarms, notifications and a dashboard: an SNS topic (encrypted with a key CloudWatch may use) that alarms
 * and per-file notifications go to, alarms per dataflow and for the workflow, the arrival checks, and the dashboard.
 * The topic is made first (finalize publishes to it); `watch` adds the rest once the workflow and the sweep exist.
 */
export class Operations extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];
  private readonly config: Config;
  private readonly action: SnsAction;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    this.config = props.config;
    const key = new Key(this, 'AlertsKey', { enableKeyRotation: true, description: 'badges-import alerts topic' });
    // CloudWatch alarms publish to an encrypted topic only when its key lets CloudWatch use it.
    key.grant(new ServicePrincipal('cloudwatch.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
    this.topic = new Topic(this, 'Alerts', { displayName: 'badges-import alerts', masterKey: key, enforceSSL: true });
    for (const email of props.config.notifications.email) this.topic.addSubscription(new EmailSubscription(email));
    this.action = new SnsAction(this.topic);
  }

  /** The alarms on each dataflow's files and arrivals and on the workflow and the sweep, and the dashboard. */
  watch(props: WatchedProps): Dashboard {
    for (const flow of this.config.dataflows) this.watchDataflow(flow, props);
    this.watchWorkflow(props);
    return this.drawDashboard();
  }

  /** A dataflow's FAILED files, unaccounted records and rejected share; its arrival check after its schedule. */
  private watchDataflow(flow: Dataflow, props: WatchedProps): void {
    const metric = (name: MetricName, statistic: string) => this.metric(name, flow, statistic, Duration.minutes(5));
    this.alarm(`FileFailed-${flow.name}`, { metric: metric(METRICS.filesFailed, 'Sum'), threshold: 1, description: `${flow.name}: ${ADVICE.fileFailed}` });
    this.alarm(`RecordsUnaccounted-${flow.name}`, { metric: metric(METRICS.recordsUnaccounted, 'Sum'), threshold: 1, description: `${flow.name}: ${ADVICE.recordsUnaccounted}` });
    this.alarm(`RejectedShare-${flow.name}`, {
      metric: metric(METRICS.rejectedPercent, 'Maximum'),
      threshold: flow.alerts.rejectedSharePercent,
      description: `${flow.name}: ${ADVICE.rejectedShare} (threshold ${flow.alerts.rejectedSharePercent}%)`,
    });
    this.alarm(`RetriesExhausted-${flow.name}`, {
      metric: metric(METRICS.retriesExhaustedPercent, 'Maximum'),
      threshold: flow.alerts.retriesExhaustedPercent,
      description: `${flow.name}: ${ADVICE.retriesExhausted} (threshold ${flow.alerts.retriesExhaustedPercent}%)`,
    });
    const window = flow.alerts.noFileWithinMinutes;
    if (window === undefined || !flow.schedule) return;
    this.alarm(`NoFileArrived-${flow.name}`, { metric: metric(METRICS.noFileArrived, 'Maximum'), threshold: 1, description: `${flow.name}: ${ADVICE.noFile} (window ${window} min)` });
    new Schedule(this, `ArrivalCheck-${flow.name}`, {
      description: `Checks that a file of dataflow ${flow.name} arrived within ${window} minutes of its schedule`,
      schedule: ScheduleExpression.expression(`cron(${shiftCron(flow.schedule.cron, window)!})`, TimeZone.of(flow.schedule.timeZone)),
      target: new ScheduleLambdaInvoke(props.sweepFunction, {
        input: ScheduleTargetInput.fromObject({ dataflow: flow.name, check: 'arrival' }),
        deadLetterQueue: props.triggerDlq,
        retryAttempts: 8,
      }),
    });
  }

  /** Executions that failed other than by a FAILED file, executions that timed out, and sweep errors. */
  private watchWorkflow({ stateMachine, sweepFunction }: WatchedProps): void {
    // A FAILED file also ends its execution in the Fail state: the workflow alarm counts only the other failures. The
    // stack-wide FilesFailed (service dimension alone) keeps the math at two metrics whatever the number of dataflows
    // (an alarm takes at most 10).
    const filesFailed = new Metric({ namespace: METRICS.namespace, metricName: METRICS.filesFailed, dimensionsMap: { service: SERVICE_NAME }, statistic: 'Sum', period: Duration.minutes(5) });
    const otherFailures = new MathExpression({
      expression: 'FILL(failed, 0) - FILL(filesFailed, 0)',
      usingMetrics: { failed: stateMachine.metricFailed({ statistic: 'Sum', period: Duration.minutes(5) }), filesFailed },
      period: Duration.minutes(5),
      label: 'Executions failed other than by a FAILED file',
    });
    this.alarm('WorkflowFailed', { metric: otherFailures, threshold: 1, description: ADVICE.workflowFailed });
    this.alarm('WorkflowTimedOut', { metric: stateMachine.metricTimedOut({ statistic: 'Sum', period: Duration.minutes(5) }), threshold: 1, description: ADVICE.workflowTimedOut });
    this.alarm('SweepFailed', { metric: sweepFunction.metricErrors({ statistic: 'Sum', period: Duration.minutes(5) }), threshold: 1, description: ADVICE.sweepFailed });
  }

  /** Runs, records by outcome, the API's latency and throttling, per dataflow, and the alarms' states. */
  private drawDashboard(): Dashboard {
    const perFlow = (name: MetricName, statistic: string, label: string) => this.config.dataflows.map((flow) => this.metric(name, flow, statistic, Duration.hours(1), `${flow.name} ${label}`));
    const stackName = Stack.of(this).stackName;
    const dashboard = new Dashboard(this, 'Dashboard', { dashboardName: `${stackName}-badges-import` });
    dashboard.addWidgets(
      new TextWidget({ markdown: `# badges-import (${stackName})\nRuns, records by outcome, and the API's latency and throttling, per dataflow. Alarms go to the alerts topic.`, width: 24, height: 2 }),
    );
    dashboard.addWidgets(
      new GraphWidget({ title: 'Runs', left: [...perFlow(METRICS.filesProcessed, 'Sum', 'files'), ...perFlow(METRICS.filesFailed, 'Sum', 'failed')], width: 12 }),
      new GraphWidget({ title: 'Records by outcome', left: [...perFlow(METRICS.recordsRead, 'Sum', 'read'), ...perFlow(METRICS.recordsAccepted, 'Sum', 'accepted'), ...perFlow(METRICS.recordsRejected, 'Sum', 'rejected'), ...perFlow(METRICS.recordsFiltered, 'Sum', 'filtered')], width: 12 }),
    );
    dashboard.addWidgets(
      new GraphWidget({ title: 'API latency (ms, mean per chunk)', left: [...perFlow(METRICS.apiLatency, 'Average', 'mean'), ...perFlow(METRICS.apiLatency, 'p90', 'p90')], width: 12 }),
      new GraphWidget({ title: 'API throttling and retries', left: [...perFlow(METRICS.apiThrottles, 'Sum', '429s'), ...perFlow(METRICS.apiRetries, 'Sum', 'retries'), ...perFlow(METRICS.apiRequests, 'Sum', 'requests')], width: 12 }),
    );
    dashboard.addWidgets(new AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24 }));
    return dashboard;
  }

  /** One of the steps' metrics (namespace BadgesImport) for one dataflow, with the dimensions Powertools gives it. */
  private metric(name: MetricName, flow: Dataflow, statistic: string, period: Duration, label?: string): Metric {
    return new Metric({ namespace: METRICS.namespace, metricName: name, dimensionsMap: { service: SERVICE_NAME, dataflow: flow.name }, statistic, period, ...(label ? { label } : {}) });
  }

  /** An alarm at or above `threshold` in one 5-minute period, missing data not breaching, sent to the topic. */
  private alarm(id: string, props: { metric: IMetric; threshold: number; description: string }): Alarm {
    const created = new Alarm(this, id, {
      metric: props.metric,
      threshold: props.threshold,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
      alarmDescription: props.description,
    });
    created.addAlarmAction(this.action);
    this.alarms.push(created);
    return created;
  }
}
