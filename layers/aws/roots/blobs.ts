import { S3BlobStore } from '../s3-blobs.ts';
import type { Env } from './compose.ts';

/** The bootdata bucket: on AWS the stack's bucket; locally s3rver (the local stack sets S3_ENDPOINT and BOOTDATA_BUCKET). */
export function blobStoreFromEnv(env: Env): S3BlobStore {
  return new S3BlobStore({
    bucket: env.BOOTDATA_BUCKET ?? 'slipway-bootdata',
    endpoint: env.S3_ENDPOINT,
    region: env.AWS_REGION,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    publicEndpoint: env.SLIPWAY_S3_PUBLIC_ENDPOINT || undefined,
  });
}
