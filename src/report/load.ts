import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse';
import { openObject } from '../aws/s3';
import type { Report } from '../contracts';
import { ERROR_CODES } from '../codes';
import { BadgesImportError } from '../errors';
import { REJECT_COLUMNS, dialectOptions } from '../core/csv';
import { peekDelimiter } from '../core/replay';
import type { RejectedSample } from './html';

/** A file given as a report that is not one. */
export class ReportFileError extends BadgesImportError {
  static override readonly code = ERROR_CODES.REPORT_UNREADABLE;
}

/** Reads a report.json, saying what is wrong with it when it is not one. */
export function readReport(path: string): Report {
  let report: Report;
  try {
    report = JSON.parse(readFileSync(path, 'utf8')) as Report;
  } catch (error) {
    throw new ReportFileError(`${path}: not readable as a report (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (typeof report !== 'object' || !report || !report.runId || !report.status || !Array.isArray(report.files)) throw new ReportFileError(`${path}: not a badges-import report.json`);
  return report;
}

/** Where a report's rejected records are: a path next to a local report, or an s3:// URI (read with your AWS credentials). */
export async function openRejected(report: Report, reportPath: string, s3: () => S3Client = () => new S3Client({})): Promise<Readable | undefined> {
  const where = report.files[0]?.rejectedFile;
  if (!where) return undefined;
  const uri = /^s3:\/\/([^/]+)\/(.+)$/.exec(where);
  if (uri) return openObject(s3(), uri[1]!, uri[2]!);
  const path = isAbsolute(where) ? where : join(dirname(reportPath), where);
  return existsSync(path) ? createReadStream(path) : undefined;
}

/** The header and the first `limit` records of a rejected-records file, reading no further. */
export async function sampleRejected(input: Readable, limit: number, total: number): Promise<RejectedSample> {
  const { stream, ...dialect } = await peekDelimiter(input);
  const rows: string[][] = [];
  let header: string[] | undefined;
  const parser = parse({ bom: true, ...dialectOptions(dialect), relax_column_count: true, skip_empty_lines: true });
  parser.on('data', (record: string[]) => {
    if (!header) header = record;
    else if (rows.length < limit) rows.push(record);
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.once('end', resolve);
    parser.once('error', reject);
  });
  for await (const part of stream) {
    parser.write(part as Buffer);
    if (rows.length >= limit) break;
  }
  if (rows.length >= limit) {
    // Enough: the rest of the file is not read (its next record may stop mid-way, which is no error here).
    parser.destroy();
    parsed.catch(() => undefined);
  } else {
    parser.end();
    await parsed;
  }
  input.destroy();
  return { header: header ?? [...REJECT_COLUMNS], rows, total };
}
