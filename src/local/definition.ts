import { type Buckets, ENV, STEPS, type StepName } from '../contracts';

/** An Amazon States Language document (only the parts the local runner reads are typed). */
export interface AslDefinition {
  StartAt: string;
  States: Record<string, AslState>;
  [key: string]: unknown;
}
export interface AslState {
  Type: string;
  Resource?: string;
  ItemProcessor?: AslDefinition & { ProcessorConfig?: { Mode?: string; ExecutionType?: string } };
  [key: string]: unknown;
}

export interface LocalDefinition {
  /** The state machine definition exactly as CDK synthesized it, with its tokens resolved to local stand-ins. */
  definition: AslDefinition;
  /** Which step each Task state runs, by state name (Task states inside Map processors included). */
  taskSteps: Record<string, StepName>;
}

const LOCAL_ARN_PREFIX = 'arn:aws:lambda:us-east-1:000000000000:function:';
type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
type Token = string | { 'Fn::GetAtt'?: [string, string]; Ref?: string };

/**
 * Resolves the state machine definition of the synthesized template (the one `cdk synth` writes, see
 * synthesizeStack) to a plain, local one: Lambda ARNs to local stand-in ARNs, bucket references to the local bucket
 * names. There is no second definition.
 */
export function resolveDefinition(template: Template, localBuckets: Buckets): LocalDefinition {
  const resources = Object.entries(template.Resources);
  const functionSteps = new Map<string, StepName>();
  const bucketNames = new Map<string, string>();
  const roleOfEnv: Record<string, keyof Buckets> = {
    [ENV.inboxBucket]: 'inbox',
    [ENV.stagingBucket]: 'staging',
    [ENV.deadLetterBucket]: 'deadLetter',
    [ENV.reportsBucket]: 'reports',
  };
  for (const [id, resource] of resources) {
    if (resource.Type !== 'AWS::Lambda::Function') continue;
    const variables = ((resource.Properties?.Environment as { Variables?: Record<string, Token> })?.Variables ?? {});
    const step = variables[ENV.step];
    if (typeof step === 'string' && (STEPS as readonly string[]).includes(step)) functionSteps.set(id, step as StepName);
    for (const [name, value] of Object.entries(variables)) {
      const role = roleOfEnv[name];
      if (role && typeof value === 'object' && value.Ref) bucketNames.set(value.Ref, localBuckets[role]);
    }
  }
  const machines = resources.filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`Expected one state machine in the synthesized stack, found ${machines.length}`);
  const definitionString = machines[0]![1].Properties?.DefinitionString as string | { 'Fn::Join': [string, Token[]] };
  const parts = typeof definitionString === 'string' ? [definitionString] : definitionString['Fn::Join'][1];
  const text = parts
    .map((part) => {
      if (typeof part === 'string') return part;
      const getAtt = part['Fn::GetAtt'];
      if (getAtt && getAtt[1] === 'Arn' && functionSteps.has(getAtt[0])) return `${LOCAL_ARN_PREFIX}${getAtt[0]}`;
      if (part.Ref === 'AWS::Partition') return 'aws';
      if (part.Ref && bucketNames.has(part.Ref)) return bucketNames.get(part.Ref)!;
      throw new Error(`The local runner cannot resolve ${JSON.stringify(part)} in the state machine definition`);
    })
    .join('');
  const definition = JSON.parse(text) as AslDefinition;

  const taskSteps: Record<string, StepName> = {};
  const visit = (states: Record<string, AslState>) => {
    for (const [name, state] of Object.entries(states)) {
      if (state.Type === 'Task' && state.Resource?.startsWith(LOCAL_ARN_PREFIX)) {
        const step = functionSteps.get(state.Resource.slice(LOCAL_ARN_PREFIX.length));
        if (step) taskSteps[name] = step;
      }
      if (state.ItemProcessor) visit(state.ItemProcessor.States);
    }
  };
  visit(definition.States);
  return { definition, taskSteps };
}
