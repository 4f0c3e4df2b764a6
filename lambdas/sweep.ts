import { SFNClient } from '@aws-sdk/client-sfn';
import { ENV } from '../src/contracts';
import { type SweepEvent, sweep } from '../src/steps/sweep';
import { lambdaDeps, lambdaHandler, traced } from './runtime';

const deps = { ...lambdaDeps(), sfn: traced(new SFNClient({})), stateMachineArn: process.env[ENV.stateMachineArn] ?? '' };

/** The schedule's target (see src/steps/sweep.ts). */
export const handler = lambdaHandler((event: SweepEvent, context) => sweep(event, { ...deps, remainingMs: () => context.getRemainingTimeInMillis() }));
