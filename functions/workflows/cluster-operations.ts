import * as z from '#core/util/zod.ts';
import { getDeps } from '#aws/roots/cluster-operations.ts';
import { finishOperation, hostAction, hostDone, nextHost } from '#core/commissaire/operations.ts';
import { OPERATION_KINDS } from '#core/commissaire/model.ts';
import type { Ports } from '#core/ports.ts';
import { lambdaHandler } from '#core/util/log.ts';

/**
 * The Task states of the cluster-operation workflow (`infra/workflows/cluster-operations.ts`):
 * one function dispatching on `step`; locally `infra/local` binds each Task to this handler.
 */
const ids = { cluster: z.string().check(z.minLength(1)), kind: z.enum(OPERATION_KINDS) };

export const ClusterOperationStep = z.discriminatedUnion('step', [
  z.object({ step: z.literal('next'), ...ids }),
  z.object({ step: z.literal('host_action'), ...ids, host: z.string().check(z.minLength(1)), task_token: z.string().check(z.minLength(1)) }),
  z.object({ step: z.literal('host_done'), ...ids, host: z.string().check(z.minLength(1)) }),
  z.object({ step: z.literal('finish'), ...ids, error: z.nullable(z.object({ Error: z.optional(z.string()), Cause: z.optional(z.string()) })) }),
]);

export async function runOperationStep(deps: Ports, raw: unknown): Promise<unknown> {
  const parsed = ClusterOperationStep.safeParse(raw);
  if (!parsed.success) throw new Error(`Invalid cluster-operation step input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const input = parsed.data;
  switch (input.step) {
    case 'next':
      return nextHost(deps, input);
    case 'host_action':
      return hostAction(deps, input);
    case 'host_done':
      await hostDone(deps, input);
      return {};
    case 'finish':
      return finishOperation(deps, input);
  }
}

export const handler = lambdaHandler((event: unknown): Promise<unknown> => runOperationStep(getDeps(), event));
