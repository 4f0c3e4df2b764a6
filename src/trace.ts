/**
 * The tracing port: where a step calls out (the badges API, an SFTP server), the call runs inside a named span, so a
 * trace shows where a slow file spent its time. It imports nothing: the API client and the SFTP source use it without
 * knowing who records the spans. In Lambda, `lambdas/runtime.ts` puts Powertools Tracer (X-Ray subsegments) behind it;
 * everywhere else (the CLI, the tests, the local runner in source mode) it is a no-op that just runs the work.
 */

/** Values a span may be annotated with (undefined ones are left out): names and counts, never a secret or a record's content. */
export type SpanAnnotations = Readonly<Record<string, string | number | boolean | undefined>>;

/** Runs `work` inside a span called `name` and answers what it answers (or throws what it throws). */
export type Tracing = <T>(name: string, work: () => Promise<T>, annotations?: SpanAnnotations) => Promise<T>;

/** The span names, one per kind of call out, so that traces from every run group the same way. */
export const SPANS = {
  /** OAuth token exchange with the token endpoint. */
  apiToken: 'api token',
  /** One import request (one batch, or a part of a refused batch). */
  apiImport: 'api import',
  /** One customer-badges lookup (reconciling an unknown outcome). */
  apiCustomerBadges: 'api customer-badges',
  /** One badgeMeta check (does the badge id exist). */
  apiBadgeMeta: 'api badgeMeta',
  /** A wait the client imposes on itself: pacing to the rate, or a backoff before a retry. */
  apiWait: 'api wait',
  sftpConnect: 'sftp connect',
  sftpList: 'sftp list',
  /** One remote file streamed into S3. */
  sftpDownload: 'sftp download',
  /** A taken file (and its marker) moved to the processed directory. */
  sftpMove: 'sftp move',
  /** The outcome files written to the vendor's error directory. */
  sftpWriteBack: 'sftp write-back',
} as const;

const untraced: Tracing = (_name, work) => work();
let current: Tracing = untraced;

/** Runs `work` in a span of the tracing in use (none by default). */
export const trace: Tracing = (name, work, annotations) => current(name, work, annotations);

/**
 * Puts `tracing` behind {@link trace} for this process (a Lambda container calls it once, at init); returns a
 * function that puts back what was there before (tests restore it).
 */
export function useTracing(tracing: Tracing): () => void {
  const previous = current;
  current = tracing;
  return () => {
    current = previous;
  };
}
