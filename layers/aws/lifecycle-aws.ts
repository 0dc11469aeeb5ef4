import type { EventRunner, EventScheduler, Notifier } from '#core/leases/lifecycle.ts';

// PLACEHOLDER: implemented by the AWS adapters (EventBridge Scheduler, Step Functions, EventBridge).
export function awsEventScheduler(_env: Record<string, string | undefined>): EventScheduler {
  const no = async () => {
    throw new Error('lease event scheduling is not configured');
  };
  return { put: no, remove: no };
}
export function awsEventRunner(_env: Record<string, string | undefined>): EventRunner {
  return {
    start: async () => {
      throw new Error('lease event workflow is not configured');
    },
  };
}
export function awsNotifier(_env: Record<string, string | undefined>): Notifier {
  return { publish: async () => undefined };
}
