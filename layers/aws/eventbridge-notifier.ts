import type { PutEventsCommand, PutEventsCommandOutput } from '@aws-sdk/client-eventbridge';
import type { Notifier } from '#core/leases/lifecycle.ts';
import { firstUse, lazyClient } from './lazy-client.ts';

/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface PutEventsClientLike {
  send(command: PutEventsCommand): Promise<Pick<PutEventsCommandOutput, 'FailedEntryCount' | 'Entries'>>;
}

/** Imported at the first notification, not at the function's cold start (lazy-client.ts). */
const eventBridge = firstUse(() => import('@aws-sdk/client-eventbridge'));
const defaultClient = lazyClient<PutEventsClientLike>(async () => new (await eventBridge()).EventBridgeClient({}));

/** The `source` of every Slipway lease notification on the bus; `detail-type` is Blazar's event type. */
export const NOTIFICATION_SOURCE = 'slipway.leases';

/**
 * Lease notifications (`lease.create`, `lease.event.start_lease`...) as EventBridge events on the
 * deployment's bus, for rules the operator adds. Without EVENT_BUS_NAME nothing is published.
 * PutEvents answers 200 even when it rejected the entry, so FailedEntryCount is checked.
 */
export function awsNotifier(env: Record<string, string | undefined>, client: PutEventsClientLike = defaultClient): Notifier {
  return {
    async publish(type, detail) {
      const bus = env.EVENT_BUS_NAME;
      if (!bus) return;
      const { PutEventsCommand } = await eventBridge();
      const out = await client.send(
        new PutEventsCommand({ Entries: [{ EventBusName: bus, Source: NOTIFICATION_SOURCE, DetailType: type, Detail: JSON.stringify(detail) }] }),
      );
      if ((out.FailedEntryCount ?? 0) > 0) {
        const entry = out.Entries?.[0];
        throw new Error(`notification ${type} rejected by EventBridge: ${entry?.ErrorCode ?? 'unknown error'}${entry?.ErrorMessage ? ` (${entry.ErrorMessage})` : ''}`);
      }
    },
  };
}
