import { type FinalizeEvent, finalizeOutputOf } from '../src/contracts';
import { finalize } from '../src/steps/finalize';
import { lambdaDeps, lambdaHandler } from './runtime';

const deps = lambdaDeps();

/** The finalize step (see src/steps/finalize.ts); the state gets the outcome, the reports bucket the whole report. */
export const handler = lambdaHandler(async (event: FinalizeEvent) => finalizeOutputOf(await finalize(event, deps)));
