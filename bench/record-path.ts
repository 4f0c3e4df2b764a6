/**
 * `tsx bench/record-path.ts`: what a range worker spends per record on its record path, in one process, free of S3
 * and of the machine's other load (CPU time, `process.cpuUsage()`): the file's first BENCH_ROWS records (default
 * 200000) held in memory, then each layer of the path timed on its own, cumulatively:
 *   decode (UTF-8 check) → guard (RecordGuard) → parse (csv-parse, as openCsv sets it) → judge/map (compileMapper,
 *   dates) → encode (encodeStagedRecord) → chunk bodies (ChunkWriter; a stand-in takes its uploads: S3 is not timed).
 * Fastest of BENCH_REPEAT (default 5) passes each. Prints µs a record per layer and its share.
 */
import { readFileSync } from 'node:fs';
import type { S3Client } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { loadConfig } from '../src/config/load';
import { openCsv } from '../src/core/csv';
import { decodeText, guardedText } from '../src/core/guard';
import { type ApiItem, compileMapper } from '../src/core/mapping';
import { encodeStagedRecord } from '../src/core/staged-record';
import { ChunkWriter } from '../src/steps/chunk-writer';
import { generateEvents } from './generate';

const CHUNK = 64 * 1024;

/** The file's bytes as a stream of 64 KiB chunks, as S3 gives them. */
function source(bytes: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK) parts.push(bytes.subarray(at, at + CHUNK));
  return Readable.from(parts, { objectMode: false });
}

const sink = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });

function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
}

async function best(repeat: number, run: () => Promise<void> | void): Promise<number> {
  let fastest = Infinity;
  for (let i = 0; i < repeat; i++) {
    const started = cpu();
    await run();
    fastest = Math.min(fastest, cpu() - started);
  }
  return fastest;
}

async function main() {
  const rows = Number(process.env.BENCH_ROWS ?? 200_000);
  const repeat = Number(process.env.BENCH_REPEAT ?? 5);
  const dir = join(__dirname, '..', '.bench');
  const file = join(dir, `events_record_path_${rows}.csv`);
  await generateEvents(file, rows);
  const bytes = readFileSync(file);
  const flow = loadConfig(join(__dirname, '..', 'examples', 'config.json')).dataflows[0]!;
  const now = () => Date.UTC(2026, 10, 27);

  const decode = await best(repeat, () => pipeline(source(bytes), decodeText(flow.csv.encoding), sink()));
  const guard = await best(repeat, () => pipeline(guardedText(source(bytes), flow.csv), sink()));
  const parse = await best(repeat, async () => {
    const csv = await openCsv(source(bytes), flow.csv);
    for await (const record of csv.records) void record;
  });
  // The parsed records, once, for the layers after the parser.
  const csv = await openCsv(source(bytes), flow.csv);
  const records: Array<{ number: number; fields: string[] }> = [];
  for await (const record of csv.records) records.push(record);
  const map = compileMapper(flow, csv.header, now);
  const mapping = await best(repeat, () => {
    for (const record of records) map(record.fields);
  });
  const items: Array<{ number: number; fields: string[]; item: ApiItem }> = [];
  for (const record of records) {
    const result = map(record.fields);
    if (result.ok) items.push({ ...record, item: result.item });
  }
  const encoding = await best(repeat, () => {
    for (const r of items) encodeStagedRecord(r.number, r.fields, r.item);
  });
  const lines = items.map((r) => encodeStagedRecord(r.number, r.fields, r.item));
  // The chunk writer as the stage runs it, its S3 client a stand-in that takes the bodies (their upload is not the path's).
  const chunking = await best(repeat, async () => {
    const chunks = new ChunkWriter({ send: () => Promise.resolve({}) } as unknown as S3Client, 'staging', (j) => `bench/${j}`, flow.destination.recordsPerWorker);
    for (let k = 0; k < lines.length; k++) {
      await chunks.add(lines[k]!, items[k]!.number);
    }
    await chunks.flush();
    await chunks.drain();
  });

  const layers = { decode, guard: guard - decode, parse: parse - guard, map: mapping, encode: encoding, chunk: chunking };
  const total = parse + mapping + encoding + chunking;
  console.log(`${records.length} records, ${(bytes.length / 1e6).toFixed(1)} MB, fastest of ${repeat}; CPU µs a record:`);
  for (const [name, ms] of Object.entries(layers)) {
    console.log(`  ${name.padEnd(7)} ${((ms * 1e3) / records.length).toFixed(2).padStart(6)} µs  ${((100 * ms) / total).toFixed(0).padStart(3)}%`);
  }
  console.log(`  total   ${((total * 1e3) / records.length).toFixed(2).padStart(6)} µs  = ${Math.round((records.length * 1e3) / total).toLocaleString('en-US')} records/s a core`);
}
void main();
