/**
 * IAM for the twin: the synthesized stack's roles and resource policies, evaluated for each request the local
 * services receive, so that a grant missing from the stack fails locally as it would in AWS.
 *
 * `@cloud-copilot/iam-simulate` is AGPL and a devDependency: it is loaded here only (local runs from a clone and the
 * tests), never from code that a Lambda bundle contains.
 */
import type * as IamSimulate from '@cloud-copilot/iam-simulate';
import { type LocalNames, LOCAL_ACCOUNT, type Template, resolveTokens } from './lambda-stack';

/** The access key of the operator, the tests and the vendor uploading: not restricted. */
export const ADMIN_ACCESS_KEY = 'S3RVER';

/** One request to a local service, as the twin checks it. */
export interface AuthorizeRequest {
  accessKeyId: string;
  /** e.g. `s3:GetObject` */
  action: string;
  /** The resource's ARN, e.g. `arn:aws:s3:::dead-letter/rejected/x.csv` */
  resource: string;
  /** Request context keys, e.g. `{ 's3:prefix': 'runs/' }` for ListBucket. */
  context?: Record<string, string | string[]>;
}

export type AuthorizeDecision = { allowed: true } | { allowed: false; message: string };
export type Authorize = (request: AuthorizeRequest) => Promise<AuthorizeDecision>;

/** Who holds an access key: a role, and the session name its credentials were issued for (the function's name). */
export interface TwinIdentity {
  role: string;
  session: string;
}

interface Policy {
  Version?: string;
  Statement: unknown[];
}

export interface StackPolicies {
  /** Role logical ID → its identity policies (inline, attached, known managed ones), tokens resolved. */
  roles: Record<string, Array<{ name: string; policy: Policy }>>;
  /** Resource ARN prefix → resource policy (bucket policies by `arn:aws:s3:::<bucket>`, topic policies by topic ARN). */
  resourcePolicies: Array<{ arn: string; policy: Policy }>;
}

/** The AWS managed policies the stack attaches, as AWS defines them (the twin cannot fetch them). */
const MANAGED_POLICIES: Record<string, Policy> = {
  'arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole': {
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' }],
  },
};

/** Reads every role's policies and every resource policy from the synthesized template, tokens resolved to local names. */
export function stackPolicies(template: Template, names: LocalNames): StackPolicies {
  const stack = { template, names };
  const roles: StackPolicies['roles'] = {};
  const resourcePolicies: StackPolicies['resourcePolicies'] = [];
  for (const [id, resource] of Object.entries(template.Resources)) {
    const p = resource.Properties ?? {};
    if (resource.Type === 'AWS::IAM::Role') {
      const list = (roles[id] ??= []);
      for (const inline of (p.Policies ?? []) as Array<{ PolicyName: string; PolicyDocument: unknown }>) list.push({ name: inline.PolicyName, policy: resolveTokens(inline.PolicyDocument, stack) as Policy });
      for (const arn of (resolveTokens(p.ManagedPolicyArns ?? [], stack) as string[])) {
        const managed = MANAGED_POLICIES[arn];
        if (managed) list.push({ name: arn, policy: managed });
      }
    }
  }
  for (const [id, resource] of Object.entries(template.Resources)) {
    const p = resource.Properties ?? {};
    if (resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') {
      const policy = resolveTokens(p.PolicyDocument, stack) as Policy;
      for (const role of (p.Roles ?? []) as Array<{ Ref?: string }>) if (role.Ref) (roles[role.Ref] ??= []).push({ name: String(p.PolicyName ?? id), policy });
    }
    if (resource.Type === 'AWS::S3::BucketPolicy') {
      resourcePolicies.push({ arn: `arn:aws:s3:::${resolveTokens(p.Bucket, stack) as string}`, policy: resolveTokens(p.PolicyDocument, stack) as Policy });
    }
    if (resource.Type === 'AWS::SNS::TopicPolicy') {
      const policy = resolveTokens(p.PolicyDocument, stack) as Policy;
      for (const topic of resolveTokens(p.Topics ?? [], stack) as string[]) resourcePolicies.push({ arn: topic, policy });
    }
  }
  return { roles, resourcePolicies };
}

/** The ARN AWS names a role session by in its error messages. */
export function assumedRoleArn(identity: TwinIdentity): string {
  return `arn:aws:sts::${LOCAL_ACCOUNT}:assumed-role/${identity.role}/${identity.session}`;
}

/** The resource policy that governs a resource ARN (a bucket's for its objects, a topic's for itself). */
function resourcePolicyOf(policies: StackPolicies, arn: string): Policy | undefined {
  const bucket = /^arn:aws:s3:::([^/]+)/.exec(arn);
  const owner = bucket ? `arn:aws:s3:::${bucket[1]}` : arn;
  const found = policies.resourcePolicies.filter((p) => p.arn === owner);
  if (found.length === 0) return undefined;
  return { Version: '2012-10-17', Statement: found.flatMap((p) => p.policy.Statement) };
}

/**
 * An authorizer for the twin's services: the admin key passes; a key the twin issued is evaluated against its role's
 * policies and the resource's policy (iam-simulate), and a refusal is worded as AWS words it.
 */
export function createAuthorizer(policies: StackPolicies, identities: ReadonlyMap<string, TwinIdentity>): Authorize {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { runSimulation } = require('@cloud-copilot/iam-simulate') as typeof IamSimulate;
  return async ({ accessKeyId, action, resource, context }) => {
    if (accessKeyId === ADMIN_ACCESS_KEY) return { allowed: true };
    const identity = identities.get(accessKeyId);
    if (!identity) return { allowed: false, message: `The AWS Access Key Id ${accessKeyId} does not exist in the twin's records.` };
    const principal = assumedRoleArn(identity);
    const result = await runSimulation(
      {
        request: {
          principal,
          action,
          resource: { resource, accountId: LOCAL_ACCOUNT },
          // The SDKs in Lambda speak HTTPS; the bucket policies deny anything else.
          contextVariables: { 'aws:SecureTransport': 'true', 'aws:PrincipalArn': `arn:aws:iam::${LOCAL_ACCOUNT}:role/${identity.role}`, 'aws:PrincipalAccount': LOCAL_ACCOUNT, ...(context ?? {}) },
        },
        identityPolicies: policies.roles[identity.role] ?? [],
        serviceControlPolicies: [],
        resourceControlPolicies: [],
        resourcePolicy: resourcePolicyOf(policies, resource),
      },
      {},
    );
    if (result.resultType === 'error') return { allowed: false, message: `The twin could not evaluate ${action} on ${resource}: ${JSON.stringify(result.errors)}` };
    if (result.overallResult === 'Allowed') return { allowed: true };
    const analysis = result.resultType === 'single' ? result.result.analysis : result.results[0]?.analysis;
    const head = `User: ${principal} is not authorized to perform: ${action} on resource: "${resource}"`;
    if (result.overallResult === 'ExplicitlyDenied') {
      const where = (analysis?.identityAnalysis?.denyStatements.length ?? 0) > 0 ? 'an identity-based policy' : 'a resource-based policy';
      return { allowed: false, message: `${head} with an explicit deny in ${where}` };
    }
    return { allowed: false, message: `${head} because no identity-based policy allows the ${action} action` };
  };
}

/** Access key → identity and its stack's policies, for every twin started in this process. */
const issued = new Map<string, { identity: TwinIdentity; policies: StackPolicies }>();
const authorizers = new WeakMap<StackPolicies, Authorize>();

/** Makes a key a twin issued known to {@link authorizeTwinRequest}, held to its role in its stack's policies. */
export function registerTwinIdentity(accessKeyId: string, identity: TwinIdentity, policies: StackPolicies): void {
  issued.set(accessKeyId, { identity, policies });
  // The next request of this stack builds its authorizer anew, knowing this key.
  authorizers.delete(policies);
}

/**
 * Keys of roles in a vendor's account (what a mocked STS AssumeRole hands out in tests): their policies are the
 * vendor's, which the twin cannot read. The twin models them honestly as far as it can: such a key reaches the
 * vendor's own buckets (their policy, not checked here) and nothing of ours (our stack grants a vendor's role
 * nothing, so AWS would refuse it).
 */
const external = new Map<string, { roleArn: string; session: string; buckets: readonly string[] }>();

/** Makes a key of an assumed vendor role known to {@link authorizeTwinRequest}: allowed on `buckets` only. */
export function registerExternalIdentity(accessKeyId: string, identity: { roleArn: string; session: string; buckets: readonly string[] }): void {
  external.set(accessKeyId, identity);
}

function authorizeExternal(identity: { roleArn: string; session: string; buckets: readonly string[] }, { action, resource }: AuthorizeRequest): AuthorizeDecision {
  const bucket = /^arn:aws:s3:::([^/]+)/.exec(resource)?.[1];
  if (bucket !== undefined && identity.buckets.includes(bucket)) return { allowed: true };
  const [, account, role] = /^arn:aws:iam::(\d{12}):role\/(.+)$/.exec(identity.roleArn) ?? [];
  return { allowed: false, message: `User: arn:aws:sts::${account}:assumed-role/${role}/${identity.session} is not authorized to perform: ${action} on resource: "${resource}" because no resource-based policy allows the ${action} action` };
}

/**
 * Checks a request made with any key a twin issued in this process against the policies of that twin's stack; the
 * operator's key (ADMIN_ACCESS_KEY) stays unrestricted. The embedded S3 takes this hook by default, so every local
 * run is held to the stack's IAM.
 */
export const authorizeTwinRequest: Authorize = (request: AuthorizeRequest) => {
  const vendor = external.get(request.accessKeyId);
  if (vendor) return Promise.resolve(authorizeExternal(vendor, request));
  const entry = issued.get(request.accessKeyId);
  if (!entry) return createAuthorizer({ roles: {}, resourcePolicies: [] }, new Map())(request);
  let authorize = authorizers.get(entry.policies);
  if (!authorize) {
    authorize = createAuthorizer(entry.policies, new Map([...issued].filter(([, e]) => e.policies === entry.policies).map(([key, e]) => [key, e.identity])));
    authorizers.set(entry.policies, authorize);
  }
  return authorize(request);
};
