import { randomBytes } from 'node:crypto';
import { appendFileSync, createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { type ReplayLedger, type ReplaySelection, type ReplayStage, replayNameOf, selectForReplay } from '../core/replay';
import { ReplayFileError } from '../errors';
import { type LocalObjectRunOptions, type LocalRunResult, runObject } from './runner';
import { LOCAL_BUCKETS } from './s3';

export interface LocalReplayOptions extends LocalObjectRunOptions {
  /** A rejected-records file, as a run wrote it. */
  rejected: string;
  /** The stages whose rejects are replayed. @default ['api'] */
  stages?: readonly ReplayStage[];
}

/**
 * Replays a rejected-records file through the local workflow: picks the records to replay, puts them in the inbox
 * outside any dataflow's prefix (where no upload would start a run) and runs them as a replay, so every record keeps
 * its number in the original file. Returns undefined when nothing was selected.
 */
export async function replayLocal(options: LocalReplayOptions): Promise<{ selection: ReplaySelection; result?: LocalRunResult }> {
  if (!existsSync(options.rejected)) throw new ReplayFileError(`${options.rejected}: no such file`);
  mkdirSync(options.outDir, { recursive: true });
  const ledger = fileLedger(options.rejected);
  const taken = options.force ? undefined : await ledger.taken();
  const selected = join(options.outDir, replayNameOf(options.rejected));
  const out = createWriteStream(selected);
  const selection = await selectForReplay(
    createReadStream(options.rejected),
    options.dataflow.csv,
    { stages: options.stages ?? ['api'], ...(taken ? { replayedBefore: taken.rows } : {}) },
    async (text) => {
      if (!out.write(text)) await once(out, 'drain');
    },
  );
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  if (selection.kept === 0) return { selection };
  const key = `replays/${options.dataflow.name}/${new Date().toISOString().replace(/[-:.]/g, '')}/${replayNameOf(options.rejected)}`;
  const uploaded = await new Upload({ client: options.s3.client, params: { Bucket: LOCAL_BUCKETS.inbox, Key: key, Body: createReadStream(selected) } }).done();
  const executionName = options.executionName ?? `replay-${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}-${randomBytes(3).toString('hex')}`;
  // Remembered before the run starts: whatever it does not issue is in its own rejected file.
  if (!options.dryRun) await ledger.record(executionName, selection.rows);
  return { selection, result: await runObject({ ...options, executionName, replay: true, ...(uploaded.VersionId ? { versionId: uploaded.VersionId } : {}) }, key) };
}

/** The replays of a local rejected-records file, in `<file>.replayed.jsonl` beside it (one line per replay run). */
export function fileLedger(rejected: string): ReplayLedger {
  const path = `${rejected}.replayed.jsonl`;
  return {
    taken() {
      const rows = new Set<number>();
      const runs: string[] = [];
      if (!existsSync(path)) return Promise.resolve({ rows, runs });
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        const entry = JSON.parse(line) as { run: string; rows: number[] };
        runs.push(entry.run);
        for (const row of entry.rows) rows.add(row);
      }
      return Promise.resolve({ rows, runs });
    },
    record(run, rows) {
      appendFileSync(path, `${JSON.stringify({ run, at: new Date().toISOString(), rows })}\n`);
      return Promise.resolve();
    },
  };
}
