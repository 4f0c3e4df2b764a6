import type { StageEvent } from '../src/contracts';
import { stage } from '../src/steps/stage';
import { lambdaDeps } from './runtime';

const deps = lambdaDeps();

/** The stage step (see src/steps/stage.ts). */
export const handler = (event: StageEvent) => stage(event, deps);
