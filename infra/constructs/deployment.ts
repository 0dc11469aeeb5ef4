import type { Construct } from 'constructs';

/**
 * How one deployment differs from another: CDK context keys (`-c key=value` on the command line,
 * or `context` in cdk.json), read and checked here once, so that a typo fails synth instead of
 * deploying a default. docs/deploying-to-aws.md lists them. (The `SLIPWAY_*` settings the
 * functions read are `slipway:settings`, in slipway-function.ts.)
 */
export const DEPLOYMENT_CONTEXT = {
  /** A short name prefixed to every fixed name (stacks, bus, state machines, schedule group), so that several deployments share an account and region. */
  name: 'slipway:deployment',
  /** Where alarm notifications go: an e-mail address subscribed to the alarm topic (none: the topic has no subscriber). */
  alarmEmail: 'slipway:alarmEmail',
  /** An agent site silent longer than this many seconds raises an alarm. */
  agentSilentSeconds: 'slipway:agentSilentSeconds',
  /** A due lease event still not run this many seconds after its time raises an alarm. */
  leaseEventLagSeconds: 'slipway:leaseEventLagSeconds',
  /** `off`, or `{"<service>": n}` overriding RESERVED_CONCURRENCY (slipway-function.ts). */
  reservedConcurrency: 'slipway:reservedConcurrency',
  /** The API's own domain name, with the ARN of an ACM certificate for it in the same region. */
  domainName: 'slipway:domainName',
  certificateArn: 'slipway:certificateArn',
  /** The API stage's steady request rate (per second) and burst. */
  apiRateLimit: 'slipway:apiRateLimit',
  apiBurstLimit: 'slipway:apiBurstLimit',
  /** `true` while the table still holds secrets sealed before secret kinds (docs/deploying-to-aws.md, migration). */
  legacySecrets: 'slipway:legacySecrets',
} as const;

export interface DeploymentOptions {
  /** Empty for the default deployment (names unchanged), else `<name>-`. */
  prefix: string;
  alarmEmail?: string;
  agentSilentSeconds: number;
  leaseEventLagSeconds: number;
  /** false: no reservations at all (an account whose concurrency quota is below what they need). */
  reservedConcurrency: false | Record<string, number>;
  domain?: { name: string; certificateArn: string };
  apiThrottle: { rateLimit: number; burstLimit: number };
  legacySecrets: boolean;
}

/**
 * Defaults. Alarms: an agent polls at least every 20 s (its claim long-poll) and the sweeper
 * runs every minute, so fifteen minutes of silence or five of lag are no hiccup. Throttle: the
 * upstream clients and the agents send a few requests per second each; 100/s with a burst of 200
 * leaves room for a fleet's nodes reporting during a large deploy, and keeps a runaway client
 * from spending the Lambda concurrency the workflows need.
 */
export const DEPLOYMENT_DEFAULTS = { agentSilentSeconds: 900, leaseEventLagSeconds: 300, apiRateLimit: 100, apiBurstLimit: 200 } as const;

const cache = new WeakMap<object, DeploymentOptions>();

/** The deployment options of the app `scope` belongs to (context is read at the root). */
export function deploymentOptions(scope: Construct): DeploymentOptions {
  const root = scope.node.root;
  const hit = cache.get(root);
  if (hit) return hit;
  const ctx = (key: string): unknown => root.node.tryGetContext(key);
  const fail = (key: string, why: string): never => {
    throw new Error(`${key}: ${why}`);
  };
  const text = (key: string): string | undefined => {
    const v = ctx(key);
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') fail(key, 'must be a string');
    return v as string;
  };
  const seconds = (key: string, dflt: number, min = 1): number => {
    const v = ctx(key);
    if (v === undefined || v === '') return dflt;
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isInteger(n) || n < min) fail(key, `must be a whole number of at least ${min}`);
    return n;
  };

  const name = text(DEPLOYMENT_CONTEXT.name);
  // It becomes part of stack, bus, state machine and schedule group names: the narrowest of their alphabets.
  if (name !== undefined && !/^[a-z][a-z0-9-]{0,19}$/.test(name)) fail(DEPLOYMENT_CONTEXT.name, 'must be 1-20 characters of a-z, 0-9 and -, starting with a letter');
  // The default deployment answers task tokens of `slipway-*` state machines: a deployment named
  // `slipway…` would have its machines (`slipway…-slipway-lease-events`) among them.
  if (name?.startsWith('slipway')) fail(DEPLOYMENT_CONTEXT.name, 'must not start with "slipway" (the default deployment\'s names do)');

  const alarmEmail = text(DEPLOYMENT_CONTEXT.alarmEmail);
  if (alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) fail(DEPLOYMENT_CONTEXT.alarmEmail, 'must be an e-mail address');

  let reserved: false | Record<string, number> = {};
  const rc = ctx(DEPLOYMENT_CONTEXT.reservedConcurrency);
  if (rc === 'off' || rc === false || rc === 'false') reserved = false;
  else if (rc !== undefined && rc !== '') {
    const parsed = typeof rc === 'string' ? (JSON.parse(rc) as unknown) : rc;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) fail(DEPLOYMENT_CONTEXT.reservedConcurrency, 'must be off or an object of service names to numbers');
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (!Number.isInteger(v) || (v as number) < 0) fail(DEPLOYMENT_CONTEXT.reservedConcurrency, `${k} must be a whole number`);
    }
    reserved = parsed as Record<string, number>;
  }

  const domainName = text(DEPLOYMENT_CONTEXT.domainName);
  const certificateArn = text(DEPLOYMENT_CONTEXT.certificateArn);
  if ((domainName === undefined) !== (certificateArn === undefined)) fail(DEPLOYMENT_CONTEXT.domainName, `and ${DEPLOYMENT_CONTEXT.certificateArn} go together`);
  if (domainName !== undefined && !/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/.test(domainName)) fail(DEPLOYMENT_CONTEXT.domainName, 'must be a lower-case DNS name');
  if (certificateArn !== undefined && !/^arn:aws[\w-]*:acm:[\w-]+:\d{12}:certificate\/[\w-]+$/.test(certificateArn)) fail(DEPLOYMENT_CONTEXT.certificateArn, 'must be an ACM certificate ARN');

  const legacy = ctx(DEPLOYMENT_CONTEXT.legacySecrets);
  const options: DeploymentOptions = {
    prefix: name ? `${name}-` : '',
    alarmEmail,
    agentSilentSeconds: seconds(DEPLOYMENT_CONTEXT.agentSilentSeconds, DEPLOYMENT_DEFAULTS.agentSilentSeconds, 60),
    leaseEventLagSeconds: seconds(DEPLOYMENT_CONTEXT.leaseEventLagSeconds, DEPLOYMENT_DEFAULTS.leaseEventLagSeconds, 60),
    reservedConcurrency: reserved,
    domain: domainName && certificateArn ? { name: domainName, certificateArn } : undefined,
    apiThrottle: { rateLimit: seconds(DEPLOYMENT_CONTEXT.apiRateLimit, DEPLOYMENT_DEFAULTS.apiRateLimit), burstLimit: seconds(DEPLOYMENT_CONTEXT.apiBurstLimit, DEPLOYMENT_DEFAULTS.apiBurstLimit) },
    legacySecrets: legacy === true || legacy === 'true',
  };
  cache.set(root, options);
  return options;
}

/** A fixed name of this deployment: `slipway-lease-events`, or `lab-slipway-lease-events` for deployment `lab`. */
export const deploymentName = (scope: Construct, name: string): string => `${deploymentOptions(scope).prefix}${name}`;
