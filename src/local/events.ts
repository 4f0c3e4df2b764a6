import { randomUUID } from 'node:crypto';
import { type Buckets, ENV } from '../contracts';

/**
 * What EventBridge and EventBridge Scheduler deliver to the stack's targets, computed from the synthesized template, so
 * that the twin's sweep receives exactly what AWS would give it:
 * - the S3 "Object Created" event (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html),
 * - matched against each `AWS::Events::Rule`'s EventPattern
 *   (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-content-based-filtering.html),
 * - turned into the target's input by its `Input`, `InputPath` or `InputTransformer`
 *   (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html),
 * - and each `AWS::Scheduler::Schedule`'s target Input with its context attributes
 *   (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
 */

/** An EventBridge event (the envelope every AWS service's event has). */
export interface EventBridgeEvent {
  version: string;
  id: string;
  'detail-type': string;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

/** What S3 knows of an object it has just created (what the local S3's object-created notification carries). */
export interface ObjectCreatedNotification {
  bucket: string;
  key: string;
  size: number;
  /** Without quotes, as S3 puts it in the event. */
  etag: string;
  /** Absent for a bucket without versioning. */
  versionId?: string;
  sequencer: string;
  /** `PutObject`, `POST Object`, `CopyObject` or `CompleteMultipartUpload`. */
  reason: string;
  requester: string;
  sourceIpAddress?: string;
  requestId?: string;
  time?: Date;
}

/** Where the twin's events come from. @default account 000000000000, region us-east-1 */
export interface EventEnvironment {
  account?: string;
  region?: string;
}

/** The EventBridge event S3 sends when an object is created, as AWS documents it (the fixture's shape). */
export function objectCreatedEvent(created: ObjectCreatedNotification, env: EventEnvironment = {}): EventBridgeEvent {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'Object Created',
    source: 'aws.s3',
    account: env.account ?? '000000000000',
    time: (created.time ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region: env.region ?? 'us-east-1',
    resources: [`arn:aws:s3:::${created.bucket}`],
    detail: {
      version: '0',
      bucket: { name: created.bucket },
      object: {
        key: created.key,
        size: created.size,
        etag: created.etag.replace(/"/g, ''),
        ...(created.versionId !== undefined ? { 'version-id': created.versionId } : {}),
        sequencer: created.sequencer,
      },
      'request-id': created.requestId ?? randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase(),
      requester: created.requester,
      'source-ip-address': created.sourceIpAddress ?? '127.0.0.1',
      reason: created.reason,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Event patterns

type Pattern = { [field: string]: Pattern | unknown[] };

/**
 * Whether an event matches an EventBridge event pattern: every field of the pattern must match; an array lists the
 * values (or content filters) any one of which matches; an object descends into the event. Content filters: `prefix`,
 * `suffix` (also with `equals-ignore-case`), `equals-ignore-case`, `anything-but`, `exists`, `numeric`, `wildcard`.
 */
export function matchRule(pattern: Pattern, event: unknown): boolean {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return false;
  const fields = event as Record<string, unknown>;
  return Object.entries(pattern).every(([field, expected]) => {
    const present = Object.hasOwn(fields, field);
    const value = fields[field];
    if (Array.isArray(expected)) {
      const values = Array.isArray(value) ? value : [value];
      return expected.some((filter) => matchFilter(filter, present, values));
    }
    return present && matchRule(expected, value);
  });
}

function matchFilter(filter: unknown, present: boolean, values: unknown[]): boolean {
  if (filter === null || typeof filter !== 'object') return present && values.some((v) => v === filter);
  const [operator, operand] = onlyEntry(filter);
  if (operator === 'exists') return operand === present;
  if (!present) return false;
  return values.some((value) => matchOperator(operator, operand, value));
}

/** A content filter is an object with one operator. */
function onlyEntry(filter: object): [string, unknown] {
  const entries = Object.entries(filter);
  if (entries.length !== 1) throw new Error(`An event pattern filter has one operator: ${JSON.stringify(filter)}`);
  return entries[0]!;
}

function matchOperator(operator: string, operand: unknown, value: unknown): boolean {
  switch (operator) {
    case 'prefix':
    case 'suffix': {
      if (typeof value !== 'string') return false;
      const ignoreCase = typeof operand === 'object' && operand !== null && 'equals-ignore-case' in operand;
      const text = ignoreCase ? String((operand as Record<string, unknown>)['equals-ignore-case']).toLowerCase() : String(operand);
      const subject = ignoreCase ? value.toLowerCase() : value;
      return operator === 'prefix' ? subject.startsWith(text) : subject.endsWith(text);
    }
    case 'equals-ignore-case':
      return typeof value === 'string' && value.toLowerCase() === String(operand).toLowerCase();
    case 'anything-but': {
      if (Array.isArray(operand)) return !operand.includes(value);
      if (typeof operand === 'object' && operand !== null) {
        const [inner, innerOperand] = onlyEntry(operand);
        return !matchOperator(inner, innerOperand, value);
      }
      return value !== operand;
    }
    case 'numeric': {
      if (typeof value !== 'number') return false;
      const terms = operand as Array<string | number>;
      for (let i = 0; i < terms.length; i += 2) {
        const limit = Number(terms[i + 1]);
        const ok = { '<': value < limit, '<=': value <= limit, '=': value === limit, '>': value > limit, '>=': value >= limit }[String(terms[i])];
        if (!ok) return false;
      }
      return true;
    }
    case 'wildcard': {
      if (typeof value !== 'string') return false;
      const expression = String(operand).split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
      return new RegExp(`^${expression}$`, 's').test(value);
    }
    default:
      throw new Error(`The twin does not implement the event pattern operator "${operator}"`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Target input

/** A rule's target as the template declares it (tokens already resolved). */
export interface RuleTarget {
  Id?: string;
  Arn?: unknown;
  Input?: string;
  InputPath?: string;
  InputTransformer?: { InputPathsMap?: Record<string, string>; InputTemplate: string };
}

/** The value at a JSON path in EventBridge's dot notation (`$.detail.object.key`, `$.resources[0]`), if any. */
export function valueAtPath(document: unknown, path: string): { found: boolean; value?: unknown } {
  if (path === '$') return { found: true, value: document };
  if (!path.startsWith('$.')) throw new Error(`Not an EventBridge JSON path: ${path}`);
  let current: unknown = document;
  for (const step of path.slice(2).split('.')) {
    const [, name, indices = ''] = /^([^[\]]*)((?:\[\d+\])*)$/.exec(step) ?? [];
    if (name === undefined) throw new Error(`Not an EventBridge JSON path: ${path}`);
    for (const key of [name, ...[...indices.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1]))]) {
      if (key === '') continue;
      if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return { found: false };
      current = (current as Record<string | number, unknown>)[key];
    }
  }
  return { found: true, value: current };
}

/**
 * What a rule's target receives for an event: the constant `Input`, the part `InputPath` selects, the event
 * transformed by the `InputTransformer`, or else the whole event.
 *
 * In an InputTemplate a placeholder outside quotes is replaced by the value as JSON (`null` when the path finds
 * nothing); inside quotes, by the value's text. A template that is then valid JSON is delivered as that JSON.
 */
export function targetInput(target: RuleTarget, event: EventBridgeEvent, rule: { arn?: string; name?: string } = {}): unknown {
  if (target.Input !== undefined) return JSON.parse(target.Input);
  if (target.InputPath !== undefined) return valueAtPath(event, target.InputPath).value;
  if (!target.InputTransformer) return event;
  const variables = new Map<string, { found: boolean; value?: unknown }>();
  for (const [name, path] of Object.entries(target.InputTransformer.InputPathsMap ?? {})) variables.set(name, valueAtPath(event, path));
  const withoutDetail: Partial<EventBridgeEvent> = { ...event };
  delete withoutDetail.detail;
  const predefined: Record<string, unknown> = {
    'aws.events.rule-arn': rule.arn ?? 'arn:aws:events:us-east-1:000000000000:rule/local',
    'aws.events.rule-name': rule.name ?? 'local',
    'aws.events.event.ingestion-time': event.time,
    'aws.events.event': withoutDetail,
    'aws.events.event.json': event,
  };
  for (const [name, value] of Object.entries(predefined)) if (!variables.has(name)) variables.set(name, { found: true, value });
  const text = fillTemplate(target.InputTransformer.InputTemplate, variables);
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function fillTemplate(template: string, variables: Map<string, { found: boolean; value?: unknown }>): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === '\\' && inString) {
      out += template.slice(i, i + 2);
      i++;
      continue;
    }
    if (c === '"') inString = !inString;
    if (c === '<') {
      const end = template.indexOf('>', i);
      const name = end > i ? template.slice(i + 1, end) : '';
      const variable = variables.get(name);
      if (variable) {
        const { found, value } = variable;
        if (inString) out += found ? JSON.stringify(typeof value === 'string' ? value : JSON.stringify(value)).slice(1, -1) : '';
        else out += found && value !== undefined ? JSON.stringify(value) : 'null';
        i = end;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** The payload EventBridge Scheduler sends a templated target (Lambda Invoke): its Input with the context attributes. */
export function scheduleInput(input: string | undefined, context: { scheduleArn: string; scheduledTime: Date; executionId?: string; attemptNumber?: number }): unknown {
  if (input === undefined) return {};
  const filled = input
    .replaceAll('<aws.scheduler.schedule-arn>', context.scheduleArn)
    .replaceAll('<aws.scheduler.scheduled-time>', context.scheduledTime.toISOString().replace(/\.\d{3}Z$/, 'Z'))
    .replaceAll('<aws.scheduler.execution-id>', context.executionId ?? randomUUID().replace(/-/g, '').slice(0, 16))
    .replaceAll('<aws.scheduler.attempt-number>', String(context.attemptNumber ?? 1));
  try {
    return JSON.parse(filled);
  } catch {
    return filled;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The template's triggers

type Resource = { Type: string; Properties?: Record<string, unknown> };
/** The parts of a synthesized CloudFormation template that the triggers need. */
export interface TriggerTemplate {
  Resources: Record<string, Resource>;
}

/** An EventBridge rule of the stack, its tokens resolved to local names. */
export interface LocalRule {
  id: string;
  pattern: Pattern;
  /** Each target, with the logical id of the Lambda function it invokes (if it invokes one). */
  targets: Array<RuleTarget & { functionId?: string }>;
}

/** An EventBridge Scheduler schedule of the stack. */
export interface LocalSchedule {
  id: string;
  expression: string;
  timeZone?: string;
  functionId?: string;
  input?: string;
}

/** The stack's EventBridge rules and schedules, from its synthesized template. */
export interface LocalTriggers {
  rules: LocalRule[];
  schedules: LocalSchedule[];
  /** The logical id of the function whose environment names a step (`sweep`, `stage`, …), by step. */
  functions: Record<string, string>;
}

/**
 * Reads the rules and schedules from a synthesized template. A `Ref` to a bucket becomes its local name (the buckets
 * are known by the environment variables the functions get); other tokens are left as they are.
 */
export function triggersOf(template: TriggerTemplate, localBuckets: Buckets): LocalTriggers {
  const resources = Object.entries(template.Resources);
  const refs = new Map<string, string>();
  const functions: Record<string, string> = {};
  const roleOfEnv: Record<string, keyof Buckets> = { [ENV.inboxBucket]: 'inbox', [ENV.stagingBucket]: 'staging', [ENV.deadLetterBucket]: 'deadLetter', [ENV.reportsBucket]: 'reports' };
  for (const [id, resource] of resources) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const variables = (resource.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};
    if (typeof variables[ENV.step] === 'string') functions[variables[ENV.step] as string] = id;
    for (const [name, value] of Object.entries(variables)) {
      const role = roleOfEnv[name];
      const ref = (value as { Ref?: string } | null)?.Ref;
      if (role && ref) refs.set(ref, localBuckets[role]);
    }
  }
  const resolve = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(resolve);
    if (value === null || typeof value !== 'object') return value;
    const ref = (value as { Ref?: unknown }).Ref;
    if (typeof ref === 'string' && Object.keys(value).length === 1 && refs.has(ref)) return refs.get(ref);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
  };
  const functionOf = (arn: unknown): string | undefined => {
    const getAtt = (arn as { 'Fn::GetAtt'?: [string, string] } | null)?.['Fn::GetAtt'];
    return getAtt && getAtt[1] === 'Arn' ? getAtt[0] : undefined;
  };
  const rules: LocalRule[] = [];
  const schedules: LocalSchedule[] = [];
  for (const [id, resource] of resources) {
    const properties = resource.Properties ?? {};
    if (resource.Type === 'AWS::Events::Rule' && properties.EventPattern && properties.State !== 'DISABLED') {
      const targets = ((properties.Targets as RuleTarget[] | undefined) ?? []).map((t) => ({ ...t, functionId: functionOf(t.Arn) }));
      rules.push({ id, pattern: resolve(properties.EventPattern) as Pattern, targets });
    }
    if (resource.Type === 'AWS::Scheduler::Schedule' && properties.State !== 'DISABLED') {
      const target = (properties.Target ?? {}) as { Arn?: unknown; Input?: string };
      schedules.push({
        id,
        expression: String(properties.ScheduleExpression),
        ...(typeof properties.ScheduleExpressionTimezone === 'string' ? { timeZone: properties.ScheduleExpressionTimezone } : {}),
        functionId: functionOf(target.Arn),
        ...(target.Input !== undefined ? { input: target.Input } : {}),
      });
    }
  }
  return { rules, schedules, functions };
}

/** What a function receives: one delivery of a rule's target or of a schedule. */
export interface Delivery {
  functionId: string;
  /** The rule or schedule that made it. */
  trigger: string;
  input: unknown;
}

/** The deliveries an event makes: one for each target of each rule it matches. */
export function deliveriesOf(triggers: LocalTriggers, event: EventBridgeEvent): Delivery[] {
  const deliveries: Delivery[] = [];
  for (const rule of triggers.rules) {
    if (!matchRule(rule.pattern, event)) continue;
    for (const target of rule.targets) {
      if (target.functionId) deliveries.push({ functionId: target.functionId, trigger: rule.id, input: targetInput(target, event, { name: rule.id, arn: `arn:aws:events:${event.region}:${event.account}:rule/${rule.id}` }) });
    }
  }
  return deliveries;
}
