import type { ChunkRef } from '../contracts';
import { readJson } from '../aws/s3';
import { SourceReadError } from '../errors';
import type { StepDeps } from './deps';

/**
 * The numbers of the chunk's records that are not sent (exact repeats, already rejected DUPLICATE_IN_FILE by the
 * stage): empty when the chunk has none.
 */
export async function skippedRecords(deps: Pick<StepDeps, 's3' | 'buckets'>, chunk: ChunkRef): Promise<ReadonlySet<number>> {
  if (!chunk.skipKey) return new Set();
  const numbers = await readJson<number[]>(deps.s3, deps.buckets.staging, chunk.skipKey);
  // A missing skip list would send repeats: stop (finalize settles the chunk as AMBIGUOUS less its skipped records).
  if (!numbers) throw new SourceReadError(`The skip list s3://${deps.buckets.staging}/${chunk.skipKey} is missing`);
  return new Set(numbers);
}
