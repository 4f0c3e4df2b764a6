import type { Report } from '../contracts';

/** Who reads the advice: the operator (CLI, alerts) can replay; the vendor (SFTP write-back) can only deliver. */
export type Audience = 'operator' | 'vendor';

/**
 * What to do after a run, in one place for every text that says it (CLI summary, per-file notification, the
 * vendor's summary file). The rule it keeps: once a run has issued records, or may have (AMBIGUOUS), the file must
 * never be delivered again whole — its content stays claimed, so a redelivery would be skipped, and a forced one
 * would issue those badges a second time. What was not sent is replayed from the rejected-records file instead.
 * Undefined when there is nothing to do.
 */
export function adviceFor(report: Report, audience: Audience): string | undefined {
  const rejected = report.files[0]?.rejectedFile;
  if (report.status === 'FAILED') {
    const sent = report.sentBeforeFailure;
    if (!sent) {
      return audience === 'operator'
        ? 'Nothing from this file was sent. Fix the cause above, then deliver the file again (or `badges-import start` it).'
        : 'Nothing from this file was sent. Deliver it again once the error above is fixed.';
    }
    const what = `${sent.accepted} record${sent.accepted === 1 ? ' was' : 's were'} accepted before the failure${sent.ambiguous ? ` and ${sent.ambiguous} may have been (AMBIGUOUS)` : ''}`;
    return audience === 'operator'
      ? `${what}. Do NOT deliver this file again: its content stays claimed (a redelivery is skipped; a forced one would issue those badges twice). Fix the cause, then replay the records not sent: \`badges-import replay --rejected ${rejected ?? '<its rejected-records file>'}\` (AMBIGUOUS ones are looked up before they are sent).`
      : `${what}. Do not deliver this file again: the records not sent will be replayed from the rejected records once the error above is fixed.`;
  }
  const holder = report.duplicateOf;
  if (report.status === 'SKIPPED_DUPLICATE' && holder) {
    const state = holder.state ?? 'imported';
    if (state === 'claimed') {
      return `Nothing was sent by this run: run ${holder.runId} (${holder.key}) was importing the same content when this run read it. If that run fails without sending anything, deliver the file again.`;
    }
    if (state === 'sent-then-failed') {
      return audience === 'operator'
        ? `Nothing was sent by this run: run ${holder.runId} (${holder.key}) sent part of this content and then failed. Replay that run's rejected records instead of delivering the file again.`
        : `Nothing was sent by this run: an earlier run of this content sent part of it and failed; the rest will be replayed from its rejected records.`;
    }
    return audience === 'operator'
      ? `Nothing was sent: the same content was imported by run ${holder.runId} (${holder.key}). \`--force\` imports it again (every badge a second time).`
      : `The same content was imported before (run ${holder.runId}): nothing was sent again.`;
  }
  return undefined;
}
