import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SynthesisError, type TemplateTransform, synthesizeStack } from '../src/local/lambda-stack';
import { LOCAL_BUCKETS } from '../src/local/s3';
import { configDocument } from './support/factories';

const work = mkdtempSync(join(tmpdir(), 'twin-synth-'));

/** What synthesizeStack throws for a configuration file (undefined when it synthesizes). */
function synthesisFailureOf(configFile: string): unknown {
  try {
    synthesizeStack(configFile, LOCAL_BUCKETS);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('Function: synthesizeStack', () => {
  it('fails with the CDK app’s own words when the app refuses the configuration', () => {
    // Prepare
    const configFile = join(work, 'invalid.json');
    writeFileSync(configFile, JSON.stringify({ dataflows: [{ name: 'no-source' }] }));

    // Act
    const failure = synthesisFailureOf(configFile);

    // Assess
    expect(failure).toBeInstanceOf(SynthesisError);
    expect((failure as SynthesisError).code).toBe('SYNTHESIS_FAILED');
    expect((failure as SynthesisError).message).toContain('Invalid configuration');
  }, 120_000);

  it('refuses an expression that does not parse, naming its JSON path, before anything is synthesized', () => {
    // Prepare
    const document = configDocument();
    const [flow] = document.dataflows as Array<{ mapping: Record<string, unknown> }>;
    flow!.mapping.badgeMetaId = { expression: 'channel == "store" ? "6571a3b9e4b0c1a2b3c4d5e7" :' };
    const configFile = join(work, 'bad-expression.json');
    writeFileSync(configFile, JSON.stringify(document));

    // Act
    const failure = synthesisFailureOf(configFile);

    // Assess
    expect(failure).toBeInstanceOf(SynthesisError);
    expect((failure as SynthesisError).message).toContain('dataflows[0].mapping.badgeMetaId.expression: is not a valid CEL expression: Unexpected token: EOF (at character 50)');
  }, 120_000);

  it('applies a named transform to a copy of the template: one synthesis, two stacks, each with its own id', () => {
    // Prepare: the tests' usual configuration (its synthesis is likely cached by the twin's other tests).
    const configFile = join(work, 'config.json');
    writeFileSync(configFile, JSON.stringify(configDocument()));
    const withoutTopics: TemplateTransform = {
      name: 'without-topics',
      apply: (template) => ({ Resources: Object.fromEntries(Object.entries(template.Resources).filter(([, r]) => r.Type !== 'AWS::SNS::Topic')) }),
    };

    // Act
    const plain = synthesizeStack(configFile, LOCAL_BUCKETS);
    const transformed = synthesizeStack(configFile, LOCAL_BUCKETS, { transform: withoutTopics });

    // Assess
    const topics = (stack: typeof plain) => Object.values(stack.template.Resources).filter((r) => r.Type === 'AWS::SNS::Topic').length;
    expect(topics(plain)).toBeGreaterThan(0);
    expect(topics(transformed)).toBe(0);
    expect(transformed.outdir).toBe(plain.outdir);
    expect(transformed.id).not.toBe(plain.id);
    expect(synthesizeStack(configFile, LOCAL_BUCKETS)).toBe(plain);
  }, 600_000);
});
