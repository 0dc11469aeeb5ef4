import { traceAwsClient } from './xray.ts';

interface Sender {
  send(command: unknown): Promise<unknown>;
}

/**
 * A value made on first use and then shared by the process: `load` runs at the first call, every
 * later call gets the same promise. A failed load is not kept, so the next call tries again.
 *
 * What it is for: the AWS SDK packages a function needs on few of its paths (KMS, S3, Step
 * Functions, Scheduler, EventBridge), imported as `firstUse(() => import('@aws-sdk/client-kms'))`
 * in their adapter instead of at the top of the module. A static import loads the package at every
 * cold start, before the first request, whether or not the invocation needs it: 10–50 ms each
 * since the SDK comes from the runtime, not the bundle (docs/bundles.md). esbuild
 * leaves `import()` of an external package as it is, so the bundle loads it from the runtime (from
 * node_modules locally) at the first call that needs it. Only DynamoDB's client, which nearly
 * every invocation uses, is still imported at start (`layers/aws/dynamo/client.ts`).
 *
 * @example
 * const sfn = firstUse(() => import('@aws-sdk/client-sfn'));
 * const { StartExecutionCommand } = await sfn();
 */
export function firstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () =>
    (value ??= load().catch((err: unknown) => {
      value = undefined;
      throw err;
    }));
}

/**
 * An SDK client built on first use (with `make`, which may import its package then) and then
 * shared by the process (house style 7), traced in X-Ray (`xray.ts`). Every root builds each of
 * its adapters at start, but most invocations never schedule, start or publish anything, and so
 * never pay for a client they do not use. `L` is the adapter's narrow seam.
 */
export function lazyClient<L>(make: () => object | Promise<object>): L {
  const client = firstUse(async () => traceAwsClient(await make()) as Sender);
  const sender: Sender = {
    send: async (command) => (await client()).send(command),
  };
  return sender as L;
}
