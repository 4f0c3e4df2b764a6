import type { FinalizeEvent } from '../src/contracts';
import { finalize } from '../src/steps/finalize';
import { lambdaDeps } from './runtime';

const deps = lambdaDeps();

/** The finalize step (see src/steps/finalize.ts). */
export const handler = (event: FinalizeEvent) => finalize(event, deps);
