/**
 * Counts the billed state transitions of one aws-local-stepfunctions execution from its event log, as Step Functions
 * Standard bills them: each state entered (in an inline Map's iterations too, which the engine forwards to the
 * parent's log) and each retry. Consumed as the run goes, so the log's queue stays empty; resolves when the execution
 * has ended.
 */
export async function countTransitions(events: AsyncGenerator<{ type: string }>, add: (n: number) => void): Promise<void> {
  for await (const event of events) if (event.type === 'StateEntered' || event.type === 'StateRetried') add(1);
}
