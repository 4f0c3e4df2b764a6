import type { Context } from 'aws-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { ENV } from '../src/contracts';
import { type SweepEvent, sweep } from '../src/steps/sweep';
import { lambdaDeps } from './runtime';

const deps = { ...lambdaDeps(), sfn: new SFNClient({}), stateMachineArn: process.env[ENV.stateMachineArn] ?? '' };

/** The schedule's target (see src/steps/sweep.ts). */
export const handler = (event: SweepEvent, context: Context) => sweep(event, { ...deps, remainingMs: () => context.getRemainingTimeInMillis() });
