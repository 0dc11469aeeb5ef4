import { traceAwsClient } from './xray.ts';

interface Sender {
  send(command: unknown): Promise<unknown>;
}

/**
 * An SDK client built on first use and then shared by the process (house style 7). Every Lambda
 * builds every adapter (`layers/aws/deps.ts`), but most never schedule, start or publish
 * anything, and so never pay for a client they do not use. `L` is the adapter's narrow seam.
 */
export function lazyClient<L>(make: () => object): L {
  let client: Sender | undefined;
  const sender: Sender = {
    send: (command) => {
      client ??= traceAwsClient(make()) as Sender;
      return client.send(command);
    },
  };
  return sender as L;
}
