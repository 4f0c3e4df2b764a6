import type { Tracer } from '@aws-lambda-powertools/tracer';
import type { SpanAnnotations, Tracing } from '../trace';

/** An X-Ray subsegment, as Tracer hands it out (aws-xray-sdk-core is Tracer's dependency, not ours). */
type Subsegment = NonNullable<Parameters<Parameters<Tracer['provider']['captureAsyncFunc']>[1]>[0]>;

/**
 * The tracing port (src/trace.ts) on Powertools Tracer: each span is an X-Ray subsegment of whatever segment is
 * current, opened in its own async context so that spans running at once (parallel lookups, uploads) each get the
 * right parent. Where Tracer is disabled (outside Lambda, or `POWERTOOLS_TRACE_ENABLED=false`) it just runs the work.
 *
 * A span that fails is flagged as an error and annotated with the error's code or name only: error messages can quote
 * a file's content, and the trace must never carry a record or a secret.
 */
export function powertoolsTracing(tracer: Tracer): Tracing {
  return (name, work, annotations) => {
    if (!tracer.isTracingEnabled()) return work();
    return tracer.provider.captureAsyncFunc(name, async (subsegment?: Subsegment) => {
      annotate(subsegment, annotations);
      try {
        return await work();
      } catch (error) {
        subsegment?.addErrorFlag();
        subsegment?.addAnnotation('error', errorCodeOf(error));
        throw error;
      } finally {
        subsegment?.close();
      }
    }) as ReturnType<typeof work>;
  };
}

function annotate(subsegment: Subsegment | undefined, annotations: SpanAnnotations | undefined): void {
  for (const [key, value] of Object.entries(annotations ?? {})) if (value !== undefined) subsegment?.addAnnotation(key, value);
}

/** `code` of the project's errors (`BadgesImportError`), else the error class's name. */
function errorCodeOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.name : typeof error;
}
