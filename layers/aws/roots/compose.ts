import { configFromEnv } from '#core/config.ts';
import type { Clock, Ports } from '#core/ports.ts';
import { type Dynamo, makeDynamo } from '../dynamo/client.ts';
import { DEFAULT_TABLE_NAME } from '../dynamo/schema.ts';

/**
 * What every function's composition root shares (`layers/aws/roots/<function>.ts`). A root wires
 * only the ports its function's code uses, so a bundle holds only those adapters and a cold start
 * loads only those SDK clients: the authorizer no longer carries S3 and its XML parser.
 * test/infra/bundle.test.ts checks each root against the ports its function's modules touch.
 */
export type Env = Record<string, string | undefined>;

/** The ports a root builds; clock and config every root has. */
export type WiredPorts = Partial<Omit<Ports, 'clock' | 'config'>>;

export const systemClock: Clock = { now: () => new Date() };

/** What a root's wiring gets: the environment, and the one DynamoDB client of the process. */
export interface WiringContext {
  env: Env;
  dynamo(): Dynamo;
}

export interface CompositionRoot {
  /** The function, as in `functions/**` (named in the errors of unwired ports). */
  readonly fn: string;
  /** Builds the wired ports from an environment (the test reads which ports are wired). */
  wire(env: Env): WiredPorts;
  /** The ports of this process: built once from `process.env`, as on a Lambda cold start. */
  getDeps(): Ports;
}

let installed: Ports | undefined;

/**
 * The in-process local stack (`npm start` without `--bundled`) serves every function from one
 * process with one set of ports (its local timers, workflow runner and callbacks): it installs
 * them here (`setDeps` in deps.ts) and every root hands them out. A bundle has its own copy of
 * this module, which nothing installs into, so a bundle always builds its own ports, as on Lambda.
 */
export function installDeps(deps: Ports | undefined): void {
  installed = deps;
}

/**
 * A port this function does not wire: any use fails with a message naming the function and the
 * port (a use-case reached a port its function was not given: add it to the function's root).
 */
function unwired(fn: string, port: string): never {
  return new Proxy(
    {},
    {
      get(_target, prop) {
        // Not a thenable: `await deps.x` must not look like a use.
        if (prop === 'then') return undefined;
        throw new Error(`the ${port} port is not wired into the ${fn} function (layers/aws/roots/${fn}.ts)`);
      },
    },
  ) as never;
}

const PORTS = [
  'tokens',
  'users',
  'nodes',
  'bmPorts',
  'leases',
  'properties',
  'idempotency',
  'jobs',
  'secrets',
  'callbacks',
  'scheduler',
  'runner',
  'notifier',
  'operations',
  'commissaire',
  'drydock',
  'blobs',
  'tasks',
] as const satisfies readonly (keyof WiredPorts)[];

export function dynamoFromEnv(env: Env): Dynamo {
  return makeDynamo({ tableName: env.TABLE_NAME ?? DEFAULT_TABLE_NAME, endpoint: env.DYNAMODB_ENDPOINT, region: env.AWS_REGION });
}

export function compositionRoot(fn: string, wiring: (ctx: WiringContext) => WiredPorts): CompositionRoot {
  let own: Ports | undefined;
  const wire = (env: Env): WiredPorts => {
    let dynamo: Dynamo | undefined;
    return wiring({ env, dynamo: () => (dynamo ??= dynamoFromEnv(env)) });
  };
  const build = (env: Env): Ports => {
    const ports = Object.fromEntries(PORTS.map((p) => [p, unwired(fn, p)])) as unknown as Ports;
    return { ...ports, ...wire(env), clock: systemClock, config: configFromEnv(env) };
  };
  return {
    fn,
    wire,
    getDeps: () => installed ?? (own ??= build(process.env)),
  };
}
