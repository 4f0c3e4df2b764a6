import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StaticSecretsProvider } from '../src/aws/secrets';
import { runLocal } from '../src/local/runner';
import { localWorkflow } from './support/local';
import { KNOWN_BADGES, SECRETS, configDocument, plainRows, toCsv } from './support/factories';

const suite = localWorkflow('estimate-', configDocument(), { sandbox: { knownBadgeIds: [...KNOWN_BADGES] } });

describe('Function: estimate against the twin', () => {
  it('counts', async () => {
    const file = join(suite.work, 'events_count.csv');
    writeFileSync(file, toCsv(plainRows(7_000_000, 120)));
    const result = await runLocal({ ...suite.options('weekly-events'), file, secrets: new StaticSecretsProvider(SECRETS) });
    console.log(JSON.stringify(result.counts, null, 1), result.report.status);
  }, 600_000);
});
