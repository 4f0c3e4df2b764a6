import { VALIDATION_CODES } from '../codes';
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
      ? `${what}. Do NOT deliver this file again: its content stays claimed (a redelivery is skipped; a forced one would issue those badges twice). Fix the cause, then replay the records not sent: \`badges-import replay ${replayTarget(rejected)} --rejected ${rejected ?? '<its rejected-records file>'}\` (AMBIGUOUS ones are looked up before they are sent).`
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
    if (audience === 'vendor') return `The same content was imported before (run ${holder.runId}): nothing was sent again.`;
    // What a forced run would issue again is what the holder accepted (markers written before `accepted` existed
    // do not say, so they keep the warning whole).
    const accepted = holder.accepted;
    const again =
      accepted === undefined
        ? 'every badge a second time'
        : accepted === 0
          ? `that run accepted no records, so none would be issued twice; replay its rejected records instead if they were fixed${holder.filtered ? `, or force it after changing the filter that left out its ${holder.filtered}` : ''}`
          : `the ${accepted} badge${accepted === 1 ? '' : 's'} that run accepted would be issued a second time`;
    return `Nothing was sent: the same content was imported by run ${holder.runId} (${holder.key}). \`--force\` imports it again (${again}).`;
  }
  if (report.status === 'COMPLETED_WITH_REJECTIONS') return report.dryRun ? dryRunAdvice(report) : rejectionsAdvice(report, audience, rejected);
  return undefined;
}

/**
 * A dry run sent nothing and claimed nothing: the file may be delivered (or run) for real. Its rejected records are
 * what that run would reject: fixed at the source first, or replayed after the real run.
 */
function dryRunAdvice(report: Report): string {
  const n = report.rows.rejected;
  return [
    `A dry run: nothing was sent and the content is not claimed. ${n} record${n === 1 ? '' : 's'} would be rejected (the codes above):`,
    'fix them in the vendor\'s file (or the mapping) before the real run, or run it as it is and replay the rejected records once fixed.',
    ...expressionAdvice(report),
  ].join(' ');
}

/**
 * A completed run left records unsent: the file was imported (its content is claimed), so it is never delivered
 * again; the records are replayed from the rejected-records file. API rejects (RETRIES_EXHAUSTED, AMBIGUOUS, the API's
 * codes) are replayed once their cause is fixed; validation rejects once the data is fixed in the rejected file.
 * Reports written before rejectedByStage existed count every rejection as the API's.
 */
function rejectionsAdvice(report: Report, audience: Audience, rejected: string | undefined): string | undefined {
  const validate = report.rejectedByStage?.validate ?? 0;
  const api = report.rejectedByStage ? report.rejectedByStage.api : report.rows.rejected;
  if (api + validate === 0) return undefined;
  const file = rejected ?? '<its rejected-records file>';
  if (audience === 'vendor') {
    return [
      ...(api > 0 ? [`${api} record${api === 1 ? ' was' : 's were'} not issued by the API and will be replayed from the rejected records.`] : []),
      ...(validate > 0 ? [`${validate} record${validate === 1 ? ' was' : 's were'} rejected as invalid and need fixing (see the rejected records).`] : []),
      'Do not deliver this file again: only the rejected records are to be sent (a redelivery is skipped).',
    ].join(' ');
  }
  const accepted = report.rows.accepted;
  return [
    `Do NOT deliver this file again: its content stays claimed (a redelivery is skipped${accepted > 0 ? `; a forced one would issue the ${accepted} accepted badge${accepted === 1 ? '' : 's'} twice` : ''}).`,
    ...(api > 0 ? [`${api} record${api === 1 ? ' was' : 's were'} rejected by the API stage: fix the cause (see the codes above), then replay them: \`badges-import replay ${replayTarget(file)} --rejected ${file}\` (AMBIGUOUS ones are looked up before they are sent).`] : []),
    ...(validate > 0 ? [`${validate} record${validate === 1 ? ' was' : 's were'} rejected in validation: fix the data in the rejected-records file, then \`badges-import replay ${replayTarget(file)} --rejected ${file} --stage validate\`.`] : []),
    ...expressionAdvice(report),
  ].join(' ');
}

/**
 * EXPRESSION_ERROR records failed a mapped field's expression or the filter: either their data is not what the expression expects,
 * or the expression does not fit the data; either may be the fix (a replay reads the configuration deployed then).
 */
function expressionAdvice(report: Report): string[] {
  const n = report.rejectionsByCode[VALIDATION_CODES.EXPRESSION_ERROR] ?? 0;
  if (n === 0) return [];
  return [
    `${n} of them failed a mapping or filter expression (${VALIDATION_CODES.EXPRESSION_ERROR}: each message names the field and what went wrong): fix their data, or the expression in the configuration (deploy it before the replay).`,
  ];
}

/** Where a replay runs: a rejected file in S3 is replayed on the deployed stack, a local one through the local workflow. */
function replayTarget(rejected: string | undefined): string {
  return rejected?.startsWith('s3://') ? '--stack <stack>' : '--config <config>';
}
