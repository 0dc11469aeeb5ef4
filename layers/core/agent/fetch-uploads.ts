import type { Ports } from '../ports.ts';
import type { Uploads } from './fetch.ts';

/**
 * Uploads to the bootdata bucket under `fetched/` (agent/fetch.ts), for the callers that fetch
 * designs and assets. A module of its own so that only their bundles, composition roots and IAM
 * roles hold the bucket: any other fetch answers at most `MAX_AGENT_INLINE_BYTES`.
 */
export const bucketUploads = (deps: Pick<Ports, 'blobs'>): Uploads => ({
  url: (key, ttlSeconds) => deps.blobs.presignPut(key, ttlSeconds, 'agent'),
  read: (key) => deps.blobs.get(key),
  remove: (key) => deps.blobs.delete(key),
});
