import type { StageEvent } from '../src/contracts';
import { stage } from '../src/steps/stage';
import { lambdaDeps, lambdaHandler } from './runtime';

const deps = lambdaDeps();

/** The stage step (see src/steps/stage.ts). */
export const handler = lambdaHandler((event: StageEvent) => stage(event, deps));
