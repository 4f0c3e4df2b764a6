import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AslDefinition, resolveDefinition } from '../src/local/definition';
import { synthesizeStack } from '../src/local/lambda-stack';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { configDocument } from './support/factories';

// asl-validator (Amazon States Language: JSON schema, transitions, terminal states, Map settings): a check nobody here
// wrote. It ships no types; this is the part of its API the test uses.
type AslValidator = (definition: unknown, options?: { checkPaths?: boolean; checkArn?: boolean }) => { isValid: boolean; errors: Array<{ 'Error code': string; Message: string }>; errorsText(separator?: string): string };
const validate = createRequire(__filename)('asl-validator') as AslValidator;

// The example configuration, and one with several dataflows: an SFTP source, a decrypt block, no schedule.
const exampleFile = join(__dirname, '..', 'examples', 'config.json');
const [flow] = configDocument().dataflows as Array<Record<string, unknown>>;
const several = {
  dataflows: [
    flow,
    { ...flow, name: 'offline-event', source: { type: 's3', prefix: 'inbox/offline-event/' }, schedule: undefined, decrypt: { privateKeySecret: 'pgp/key', passphraseSecret: 'pgp/passphrase' } },
    {
      ...flow,
      name: 'vendor-sftp',
      source: { type: 'sftp', host: 'sftp.vendor.example', username: 'brand', privateKeySecret: 'sftp/key', hostKeySha256: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s', directory: '/outgoing', processedDirectory: '/outgoing/done' },
      schedule: { cron: '0/15 * * * ? *', timeZone: 'UTC' },
    },
  ],
};
const severalFile = join(mkdtempSync(join(tmpdir(), 'asl-')), 'config.json');
writeFileSync(severalFile, JSON.stringify(several));
// Synthesized as the twin does (`cdk synth` of bin/app.ts, cached), the definition resolved to local names.
const definitions: Array<[string, AslDefinition]> = [
  ['examples/config.json', resolveDefinition(synthesizeStack(exampleFile, LOCAL_BUCKETS).template, LOCAL_BUCKETS).definition],
  ['three dataflows (SFTP, decrypt)', resolveDefinition(synthesizeStack(severalFile, LOCAL_BUCKETS).template, LOCAL_BUCKETS).definition],
];

describe('Function: asl-validator, on the synthesized state machine', () => {
  it.each(definitions)('finds no error in the definition synthesized for %s', (_name, definition) => {
    // Act
    const result = validate(structuredClone(definition));

    // Assess
    expect(result.errorsText()).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('catches a broken definition: a Next to a state that does not exist', () => {
    // Prepare: the same definition with one transition pointing nowhere.
    const broken = structuredClone(definitions[0]![1]);
    const [name, state] = Object.entries(broken.States).find(([, s]) => typeof s.Next === 'string')!;
    state.Next = 'NoSuchState';

    // Act
    const result = validate(broken);

    // Assess
    expect(name).toBeDefined();
    expect(result.isValid).toBe(false);
    expect(result.errors.map((e) => e['Error code'])).toContain('MISSING_TRANSITION_TARGET');
  });
});
