import type { SendEvent } from '../src/contracts';
import { send } from '../src/steps/send';
import { lambdaDeps, lambdaHandler } from './runtime';

const deps = lambdaDeps();

/** The send step (see src/steps/send.ts). */
export const handler = lambdaHandler((event: SendEvent) => send(event, deps));
