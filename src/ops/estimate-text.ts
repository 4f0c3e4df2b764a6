import type { Estimate } from './estimate';

// The human rendering of an estimate: what `badges-import estimate` prints without --json.

const usd = (n: number) => (n >= 1 ? `$${n.toFixed(2)}` : `$${n.toFixed(n >= 0.01 ? 4 : 6)}`);
const count = (n: number) => Math.round(n).toLocaleString('en-US');
const perMillion = (n: number, rows: number) => (rows > 0 ? (n * 1_000_000) / rows : 0);

function duration(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Rows of label, per file, per million records, laid out in columns. */
function table(rows: Array<[string, string, string]>): string {
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map(([a, b, c]) => `  ${a.padEnd(widths[0]!)}  ${b.padStart(widths[1]!)}  ${c.padStart(widths[2]!)}`).join('\n');
}

/** The estimate as a readable page: settings, time, counts per file and per million records, dollars, warnings. */
export function estimateText(e: Estimate): string {
  const m = (n: number) => {
    const value = perMillion(n, e.rows);
    return value < 10 && !Number.isInteger(value) ? value.toFixed(2) : count(value);
  };
  const { plan, settings, wallSeconds: w } = e;
  const head = [
    `Estimate for dataflow ${e.dataflow}: ${count(e.rows)} records, ${bytes(e.bytes)}${plan.sequentialPass ? ` (${plan.sequentialPass}: a sequential pass first)` : ''}`,
    `Settings: batchSize ${settings.batchSize}, recordsPerWorker ${settings.recordsPerWorker}, maxConcurrency ${settings.maxConcurrency}, maxRequestsPerMinute ${settings.maxRequestsPerMinute}`,
    `Plan: ${plan.scans ? `${plan.scans} scans, ` : ''}${plan.ranges} ranges of ${bytes(plan.rangeBytes)}, ${plan.partitions} key partitions, ${count(plan.chunks)} chunks, ${count(plan.apiRequests)} API requests`,
    '',
    `Wall time: ${duration(w.total)} (staging ${duration(w.staging)}, sending ${duration(w.sending)}, finalize ${duration(w.finalize)})`,
    '',
  ];
  const lambdaRows: Array<[string, string, string]> = Object.entries(e.lambda).flatMap(([name, l]) => [
    [`Lambda ${name}: invocations`, count(l.invocations), m(l.invocations)],
    [`Lambda ${name}: GB-seconds`, l.gbSeconds.toFixed(1), perMillion(l.gbSeconds, e.rows).toFixed(1)],
  ]);
  const rows: Array<[string, string, string]> = [
    ['', 'per file', 'per 1M records'],
    ...lambdaRows,
    ['State transitions (Standard)', count(e.transitions), m(e.transitions)],
    ['S3 PUT/COPY/POST/LIST requests', count(e.s3.putCopyPostList), m(e.s3.putCopyPostList)],
    ['S3 GET/HEAD and other requests', count(e.s3.getAndOther), m(e.s3.getAndOther)],
    ['DynamoDB write request units (send budget)', count(e.dynamoDb.writeRequestUnits), m(e.dynamoDb.writeRequestUnits)],
    ['DynamoDB read request units (send budget)', count(e.dynamoDb.readRequestUnits), m(e.dynamoDb.readRequestUnits)],
    ['Data sent to the API', bytes(e.apiBytes), bytes(perMillion(e.apiBytes, e.rows))],
    ['CloudWatch Logs ingested', bytes(e.logBytes), bytes(perMillion(e.logBytes, e.rows))],
    ['', '', ''],
    ['Lambda requests', usd(e.usd.lambdaRequests), usd(perMillion(e.usd.lambdaRequests, e.rows))],
    ['Lambda compute (arm64)', usd(e.usd.lambdaCompute), usd(perMillion(e.usd.lambdaCompute, e.rows))],
    ['Step Functions', usd(e.usd.stepFunctions), usd(perMillion(e.usd.stepFunctions, e.rows))],
    ['S3 requests', usd(e.usd.s3), usd(perMillion(e.usd.s3, e.rows))],
    ['DynamoDB', usd(e.usd.dynamoDb), usd(perMillion(e.usd.dynamoDb, e.rows))],
    ['CloudWatch Logs ingestion', usd(e.usd.logs), usd(perMillion(e.usd.logs, e.rows))],
    ['Total', usd(e.usdPerFile), usd(e.usdPerMillionRecords)],
  ];
  const tail = [
    '',
    `Prices: us-east-1 list prices read on ${e.pricesReadOn} (src/ops/prices.ts); S3 storage and data transfer not included.`,
    ...(e.warnings.length ? ['', 'Warnings:', ...e.warnings.map((x) => `  - ${x}`)] : []),
  ];
  return `${[...head, table(rows), ...tail].join('\n')}\n`;
}
