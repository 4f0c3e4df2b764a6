import type { Dataflow } from '../config/schema';
import type { PullResult, Report } from '../contracts';
import { adviceFor } from './advice';

/**
 * Every text that tells a person how a run went, in one place: the CLI's summary, the per-file notification (SNS),
 * the summary file written back to the vendor's SFTP error directory, and the CLI's lines for an SFTP poll. Each is
 * a pure function of the report (or the poll), so what they say cannot drift from its numbers; what to do next comes
 * from adviceFor, per audience.
 */

/** The rejection codes of a report, most frequent first. */
function codesByCount(report: Report): Array<[string, number]> {
  return Object.entries(report.rejectionsByCode).sort((a, b) => b[1] - a[1]);
}

/** `, 3 filtered` when the dataflow's filter left records out (nothing for a file it left none, or a report from before filters). */
function filteredPart(report: Report): string {
  const filtered = report.rows.filtered ?? 0;
  return filtered > 0 ? `, ${filtered} filtered` : '';
}

/**
 * Every record of a report in one phrase: `40 read, 30 accepted, 3 rejected, 7 filtered` (the filtered count only
 * when there are any). The three outcomes add up to what was read: the report's conservation, said in words.
 */
function recordsLine(report: Report): string {
  return `${report.rows.total} read, ${report.rows.accepted} accepted, ${report.rows.rejected} rejected${filteredPart(report)}`;
}

/** The CLI's summary of a run (`run`, `replay`, `report`, `serve`): status, records, codes, error, advice, where things are. */
export function summary(report: Report, reportPath: string, rejectedPath?: string, filteredPath?: string): string {
  const codes = codesByCount(report)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const file = report.files[0];
  const lines = [
    `${report.dataflow}: ${file?.name ?? '?'} — ${report.status}${report.dryRun ? ' (dry run: nothing sent)' : ''}`,
    `  records ${report.rows.total}: ${report.dryRun ? `${report.rows.valid} valid` : `${report.rows.accepted} accepted`}, ${report.rows.rejected} rejected${codes ? ` (${codes})` : ''}${filteredPart(report)}`,
  ];
  if (file?.expandedTo) {
    const n = `${file.expandedTo.length} matching entr${file.expandedTo.length === 1 ? 'y' : 'ies'}`;
    lines.push(report.dryRun ? `  a zip archive: ${n} checked; a real run would import each on its own` : `  a zip archive: ${n} written to the inbox, each imported on its own`);
  }
  if (report.error) lines.push(`  error   ${report.error.code}: ${report.error.message}`);
  const advice = adviceFor(report, 'operator');
  if (advice) lines.push(`  next    ${advice}`);
  lines.push(`  report  ${reportPath}`);
  if (rejectedPath) lines.push(`  rejected ${rejectedPath}`);
  if (filteredPath) lines.push(`  filtered ${filteredPath}`);
  return `${lines.join('\n')}\n`;
}

/** What a poll of an SFTP server or a vendor's bucket took and left, one line each. */
export function pullSummary(dataflow: Dataflow, pulled: PullResult): string {
  const source = dataflow.source;
  const where = source.type === 'sftp' ? `sftp://${source.host}:${source.port}${source.directory}` : source.bucket ? `s3://${source.bucket}/${source.vendorPrefix}` : source.prefix;
  const lines = [`${dataflow.name}: ${where}: took ${pulled.taken.length} file(s), ${pulled.waiting.length} waiting, ${pulled.failed.length} failed`];
  for (const t of pulled.taken) lines.push(`  took    ${t.path} (${t.bytes} bytes) → s3://inbox/${t.key}; moved to ${t.movedTo}`);
  for (const w of pulled.waiting) lines.push(`  waiting ${w.path}: ${w.reason}`);
  for (const f of pulled.failed) lines.push(`  failed  ${f.path}: ${f.message}`);
  return `${lines.join('\n')}\n`;
}

/** `[badges-import] weekly-events: events.csv COMPLETED_WITH_REJECTIONS (3 of 40 rejected)`, within SNS's 100 characters. */
export function notificationSubject(report: Report): string {
  const file = report.files[0]?.name ?? '?';
  const detail = report.status === 'COMPLETED_WITH_REJECTIONS' ? ` (${report.rows.rejected} of ${report.rows.total} rejected)` : '';
  const subject = `[badges-import] ${report.dataflow}: ${file} ${report.status}${detail}`.replace(/[^\x20-\x7e]/g, '?');
  return subject.slice(0, 100);
}

/** What Connect+ mails per file: dataflow, file, status, totals, duration, and where the rejected records are. */
export function notificationText(report: Report): string {
  const file = report.files[0];
  const codes = codesByCount(report);
  const lines = [
    `Dataflow:  ${report.dataflow}`,
    `File:      ${file?.name ?? '?'}${file?.source.origin ? ` (from ${file.source.origin})` : ''}`,
    `Status:    ${report.status}`,
    `Run:       ${report.runId}`,
    `Started:   ${report.startedAt}`,
    `Duration:  ${(report.durationMs / 1000).toFixed(1)} s`,
    `Records:   ${recordsLine(report)}`,
    ...(codes.length > 0 ? ['Rejected by code:', ...codes.map(([code, n]) => `  ${code}: ${n}`)] : []),
    ...(report.error ? [`Error:     ${report.error.code}: ${report.error.message}`] : []),
    ...(file?.rejectedFile ? [`Rejected records: ${file.rejectedFile}`] : []),
    ...(file?.filteredFile ? [`Filtered records: ${file.filteredFile}`] : []),
    ...[adviceFor(report, 'operator')].filter((a) => a !== undefined).map((a) => `What to do: ${a}`),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The names of the files written back to a vendor for a run (SFTP's errorDirectory, an S3 source's errorPrefix):
 * `result_<yyyyMMddHHmmss>_<file>.rejected.csv` and `….summary.txt`, the time being the run's finish.
 */
export function writeBackNames(report: Report, fileName: string): { rejected: string; summary: string } {
  const stamp = report.finishedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, '').replace('T', '');
  const base = `result_${stamp}_${fileName}`;
  return { rejected: `${base}.rejected.csv`, summary: `${base}.summary.txt` };
}

/** The report summary written back next to the rejected records: what a vendor needs, nothing internal. */
export function vendorSummary(report: Report, fileName: string, rejectedName: string | undefined): string {
  const lines = [
    `File:      ${fileName}`,
    `Dataflow:  ${report.dataflow}`,
    `Run:       ${report.runId}`,
    `Status:    ${report.status}`,
    `Finished:  ${report.finishedAt}`,
    `Records:   ${recordsLine(report)}`,
  ];
  const codes = codesByCount(report);
  if (codes.length > 0) lines.push('Rejected by reason:', ...codes.map(([code, n]) => `  ${code}: ${n}`));
  const filtered = report.rows.filtered ?? 0;
  if (filtered > 0) lines.push(`${filtered} record${filtered === 1 ? ' was' : 's were'} left out by the dataflow's filter: neither sent nor rejected.`);
  if (report.error) lines.push(`Error:     ${report.error.code}: ${report.error.message}`);
  const advice = adviceFor(report, 'vendor');
  if (advice) lines.push(advice);
  if (rejectedName) lines.push(`The rejected records, with their record numbers and reasons, are in ${rejectedName}.`);
  return `${lines.join('\n')}\n`;
}
