/**
 * The twin's Lambda runtime: runs in a forked child process (one container), loads the function's bundle as Lambda's
 * Node.js runtime does, and answers each invocation the parent sends over the IPC channel, one at a time, with the
 * handler's result or the error as Lambda reports it (`{ errorType, errorMessage, trace }`).
 *
 * It is bundled on its own (esbuild) and imports nothing of the project: what runs in here is the deployed bundle.
 */
import { randomUUID } from 'node:crypto';

/** Printed on stdout after each invocation (see lambda.ts). */
const END_MARKER = '\u0000badges-twin-end ';
/** Lambda's limit on a synchronous invocation's response. */
const MAX_RESPONSE_BYTES = 6_291_556;

interface Invoke {
  type: 'invoke';
  requestId: string;
  event: unknown;
  deadline: number;
}

const bundle = process.env.BADGES_TWIN_BUNDLE!;
const [file, exportName] = [`${bundle}/${process.env._HANDLER!.replace(/\.[^.]+$/, '')}.js`, process.env._HANDLER!.replace(/^.*\./, '')];
const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME!;

function lambdaError(error: unknown): { errorType: string; errorMessage: string; trace: string[] } {
  if (error instanceof Error) return { errorType: error.name, errorMessage: error.message, trace: (error.stack ?? '').split('\n') };
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

let handler: ((event: unknown, context: unknown) => Promise<unknown>) | undefined;
let initError: ReturnType<typeof lambdaError> | undefined;
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(file) as Record<string, unknown>;
  const candidate = loaded[exportName];
  if (typeof candidate !== 'function') initError = { errorType: 'Runtime.HandlerNotFound', errorMessage: `${process.env._HANDLER} is undefined or not exported`, trace: [] };
  else handler = candidate as typeof handler;
} catch (error) {
  initError = lambdaError(error);
}

const send = (message: unknown) => new Promise<void>((resolve) => process.send!(message, () => resolve()));
// The init phase is over: Lambda counts the function's timeout from here.
void send({ type: 'ready' });

// The parent went away (a run ended, the CLI exited): so does the container.
process.on('disconnect', () => process.exit(0));

process.on('message', (message: Invoke) => {
  if (message.type !== 'invoke') return;
  void invoke(message);
});

async function invoke({ requestId, event, deadline }: Invoke): Promise<void> {
  const context = {
    awsRequestId: requestId,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION}:000000000000:function:${functionName}`,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/[$LATEST]${randomUUID().replace(/-/g, '')}`,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
  let answer: { ok: true; payload: string } | { ok: false; error: ReturnType<typeof lambdaError> };
  if (initError) answer = { ok: false, error: initError };
  else {
    try {
      const result = await handler!(event, context);
      const payload = JSON.stringify(result ?? null);
      answer =
        Buffer.byteLength(payload) > MAX_RESPONSE_BYTES
          ? { ok: false, error: { errorType: 'Function.ResponseSizeTooLarge', errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`, trace: [] } }
          : { ok: true, payload };
    } catch (error) {
      answer = { ok: false, error: lambdaError(error) };
    }
  }
  if (!answer.ok) {
    // As Lambda's runtime does: an invocation's error is logged, so the function's log says why it failed.
    const { errorType, errorMessage, trace } = answer.error;
    process.stdout.write(`${JSON.stringify({ timestamp: new Date().toISOString(), level: 'ERROR', requestId, message: 'Invoke Error', errorType, errorMessage, stackTrace: trace })}\n`);
  }
  // The end marker follows everything the invocation printed (pipes are written in order), so the parent knows it
  // has every log and metric line of this invocation when it sees it.
  process.stdout.write(`\n${END_MARKER}${requestId}\n`);
  await send({ type: 'result', requestId, ...answer });
}
