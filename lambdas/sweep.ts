import { SFNClient } from '@aws-sdk/client-sfn';
import { ENV } from '../src/contracts';
import { type SweepEvent, sweep } from '../src/steps/sweep';
import { lambdaDeps } from './runtime';

const deps = { ...lambdaDeps(), sfn: new SFNClient({}), stateMachineArn: process.env[ENV.stateMachineArn] ?? '' };

/** The schedule's target (see src/steps/sweep.ts). */
export const handler = (event: SweepEvent) => sweep(event, deps);
