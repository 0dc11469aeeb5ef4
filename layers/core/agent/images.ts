import { NotFoundError, ValidationError } from '../errors.ts';
import type { Principal } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { agentSite } from './jobs.ts';

/**
 * OS images kept in the deployment's bucket, for the sites' agents (`GET
 * /api/v1.0/agent/images/{name}`): an agent whose catalog names an image by `api:<name>`
 * (agent.json `netboot.images`) fetches it through the API, which answers with a short-lived
 * presigned URL of `images/<name>` — agents hold no AWS credentials. The agent still checks the
 * download against the sha256 its catalog gives, so the bucket is not trusted with integrity.
 * Operators put images there with any S3 client (`aws s3 cp disk.raw s3://<bucket>/images/<name>`).
 */
export const IMAGE_PREFIX = 'images/';
/** One path segment: letters, digits, `.`, `_`, `-`; not starting with a dot. */
const IMAGE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/;
/** Long enough to start a download (S3 checks the expiry when a request starts, not while it streams). */
const IMAGE_URL_SECONDS = 300;

export async function imageLocation(deps: Ports, auth: Principal | undefined, name: string): Promise<string> {
  agentSite(auth);
  if (!IMAGE_NAME.test(name)) throw new ValidationError(`Invalid image name ${JSON.stringify(name.slice(0, 64))}: 1-200 letters, digits, '.', '_' or '-', not starting with '.'`);
  // Looked up first, so that a name the bucket lacks is a 404 in the API's own format rather than
  // the object store's XML at the end of a redirect.
  if ((await deps.blobs.size(`${IMAGE_PREFIX}${name}`)) === undefined) throw new NotFoundError(`Image ${name} not found (no object ${IMAGE_PREFIX}${name} in the bucket)`);
  return deps.blobs.presignGet(`${IMAGE_PREFIX}${name}`, IMAGE_URL_SECONDS, 'agent');
}
