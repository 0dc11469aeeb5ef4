import type { S3Client } from '@aws-sdk/client-s3';
import type { BlobStore } from '#core/drydock/store.ts';
import { firstUse } from './lazy-client.ts';
import { traceAwsClient } from './xray.ts';

export interface S3BlobSettings {
  bucket: string;
  /** Set locally (s3rver); unset on AWS. */
  endpoint?: string;
  region?: string;
  /**
   * Locally: the object store's secret, made per data directory by the local stack, which
   * refuses requests not signed with it (default: S3_SECRET_ACCESS_KEY of the environment).
   */
  secretAccessKey?: string;
  /**
   * Locally: the S3 endpoint that presigned URLs name, when the nodes that follow them reach the
   * object store at another address than the API does (a VM behind QEMU's user network reaches
   * the host's loopback at a guest-side address). The signature covers the host, so the URL is
   * signed for this endpoint, not rewritten afterwards. Default: `endpoint`.
   */
  publicEndpoint?: string;
}

/**
 * Per-process counters of S3 requests (by command), read by `npm run bench` to report S3
 * operations per node, like `dynamoStats`. Counted at the deserialize step, i.e. per request
 * actually sent: presigning runs the same command through the stack but stops before sending,
 * so presigned URLs are counted apart (`presigns`).
 */
export const s3Stats = {
  calls: new Map<string, number>(),
  presigns: 0,
  reset(): void {
    this.calls.clear();
    this.presigns = 0;
  },
};

/**
 * Imported at the first use of the bucket, not at the function's cold start (lazy-client.ts): the
 * functions that hold a blob store read or write the bucket on few of their paths.
 */
const s3 = firstUse(() => import('@aws-sdk/client-s3'));
const presigner = firstUse(() => import('@aws-sdk/s3-request-presigner'));

async function makeS3(s: S3BlobSettings): Promise<S3Client> {
  const { S3Client } = await s3();
  const client = new S3Client({
    // On AWS the SDK finds the region itself (Lambda sets AWS_REGION).
    ...(s.region ? { region: s.region } : {}),
    ...(s.endpoint
      ? {
          endpoint: s.endpoint,
          region: 'us-east-1',
          // s3rver serves buckets by path only and knows one account, S3RVER (it checks the key
          // id, not the SigV4 signature), so any other key id is InvalidAccessKeyId. The local
          // stack checks the signature itself, against its own secret (infra/local/s3-auth.ts).
          forcePathStyle: true,
          credentials: { accessKeyId: 'S3RVER', secretAccessKey: s.secretAccessKey ?? process.env.S3_SECRET_ACCESS_KEY ?? 'S3RVER' },
          // s3rver predates the default CRC checksums of newer SDKs.
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      s3Stats.calls.set(name, (s3Stats.calls.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'deserialize', name: 'slipwayS3Stats' },
  );
  return client;
}

/** A missing object (or bucket): S3 answers NoSuchKey / NoSuchBucket, a HEAD-like 404 NotFound. */
function isMissing(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return err.name === 'NoSuchKey' || err.name === 'NoSuchBucket' || err.name === 'NotFound' || status === 404;
}

/** The bootdata bucket on S3 (s3rver locally). */
export class S3BlobStore implements BlobStore {
  /** The clients, each built at its first use. */
  private readonly client: () => Promise<S3Client>;
  private readonly presigner: () => Promise<S3Client>;
  private readonly bucket: string;

  constructor(s: S3BlobSettings) {
    this.client = firstUse(async () => traceAwsClient(await makeS3(s)));
    // Its own, untraced client: presigning sends nothing, so it is no call to trace.
    const presignWith = s.endpoint && s.publicEndpoint && s.publicEndpoint !== s.endpoint ? { ...s, endpoint: s.publicEndpoint } : s;
    this.presigner = firstUse(() => makeS3(presignWith));
    this.bucket = s.bucket;
  }

  async put(key: string, body: Uint8Array, contentType: string): Promise<void> {
    const [client, { PutObjectCommand }] = await Promise.all([this.client(), s3()]);
    await client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  get(key: string): Promise<Buffer | undefined> {
    return this.read(this.bucket, key);
  }

  async size(key: string): Promise<number | undefined> {
    const [client, { HeadObjectCommand }] = await Promise.all([this.client(), s3()]);
    try {
      const res = await client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return res.ContentLength ?? 0;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async presignGet(key: string, ttlSeconds: number, audience: 'node' | 'agent' = 'node'): Promise<string> {
    s3Stats.presigns++;
    const [client, { GetObjectCommand }, { getSignedUrl }] = await Promise.all([audience === 'node' ? this.presigner() : this.client(), s3(), presigner()]);
    return getSignedUrl(client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlSeconds });
  }

  async presignPut(key: string, ttlSeconds: number, _audience: 'agent'): Promise<string> {
    s3Stats.presigns++;
    const [client, { PutObjectCommand }, { getSignedUrl }] = await Promise.all([this.client(), s3(), presigner()]);
    return getSignedUrl(client, new PutObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: ttlSeconds });
  }

  async delete(key: string): Promise<void> {
    const [client, { DeleteObjectCommand }] = await Promise.all([this.client(), s3()]);
    await client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  getS3Url(bucket: string, key: string): Promise<Buffer | undefined> {
    return this.read(bucket, key);
  }

  private async read(bucket: string, key: string): Promise<Buffer | undefined> {
    const [client, { GetObjectCommand }] = await Promise.all([this.client(), s3()]);
    try {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }
}
