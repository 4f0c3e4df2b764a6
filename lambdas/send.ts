import type { SendEvent } from '../src/contracts';
import { send } from '../src/steps/send';
import { lambdaDeps } from './runtime';

const deps = lambdaDeps();

/** The send step (see src/steps/send.ts). */
export const handler = (event: SendEvent) => send(event, deps);
