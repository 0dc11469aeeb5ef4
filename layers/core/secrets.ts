/**
 * Secrets at rest (DESIGN.md §5): BMC passwords the cloud holds are sealed before they are
 * stored and opened only to hand them to the site's agent in a claimed job. Sealed values are
 * `{"$sealed": "<opaque>"}` so code can tell them from plain strings.
 *
 * Every secret is sealed as one kind and opens only as that kind: the kind is bound into the
 * ciphertext (KMS encryption context on AWS, AES-GCM additional data locally), and on AWS each
 * function's role may use only the kinds its code seals or opens (`kms:EncryptionContext`
 * conditions, infra/constructs/secret-grants.ts). So the node-facing boot-action function, which
 * opens node keys, cannot open a BMC password even with a stolen ciphertext.
 */
export const SECRET_KINDS = [
  /** `driver_info` passwords (IPMI, Redfish): Ironic, Drydock's node registration; opened for agent jobs. */
  'bmc-password',
  /** An Ironic deploy's or a lease's config drive (its user data may hold secrets); opened for the agent's deploy job. */
  'config-drive',
  /** A Drydock boot action's node key (the installer's report credential); opened for the boot-action views and the agent. */
  'node-key',
  /** A Commissaire host's SSH private key; opened for the agent's SSH jobs and `GET …/creds`. */
  'ssh-key',
  /** A Commissaire container manager's bearer token; opened to call the manager. */
  'container-manager-token',
  /** A stored response that carries a secret (a new token), replayed for its Idempotency-Key. */
  'idempotent-reply',
] as const;
export type SecretKind = (typeof SECRET_KINDS)[number];

export interface SecretBox {
  seal(kind: SecretKind, plain: string): Promise<string>;
  /** Fails unless `sealed` was sealed as `kind` (and with this deployment's key). */
  open(kind: SecretKind, sealed: string): Promise<string>;
}

export interface Sealed {
  $sealed: string;
}

export const isSealed = (v: unknown): v is Sealed =>
  typeof v === 'object' && v !== null && typeof (v as Sealed).$sealed === 'string';

/** Keys of driver_info that hold secrets. */
export const SECRET_FIELDS = new Set(['ipmi_password', 'redfish_password']);

/** Seals every secret field of a driver_info (as BMC passwords). */
export async function sealSecrets(box: SecretBox, info: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(info)) out[k] = SECRET_FIELDS.has(k) && typeof v === 'string' ? { $sealed: await box.seal('bmc-password', v) } : v;
  return out;
}

/** Opens every sealed field of an object whose secrets are all of one kind (for the agent's job only). */
export async function openSecrets(box: SecretBox, kind: SecretKind, info: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(info)) out[k] = isSealed(v) ? await box.open(kind, v.$sealed) : v;
  return out;
}

/** What clients see: secrets as `******`, like Ironic. */
export function maskSecrets(info: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(info).map(([k, v]) => [k, SECRET_FIELDS.has(k) || isSealed(v) ? '******' : v]));
}

/**
 * Where a client-supplied value holds something shaped like a sealed secret (an object with a
 * `$sealed` key, at any depth), or undefined. Only the API seals: a client that sends such a
 * value could make the agent's claims open something that was never sealed (issue "tenants
 * cannot harm the site"), so every writer of driver_info, properties, extra or a port's fields
 * refuses it. Iterative, as the value is not yet known to be shallow.
 */
export function sealedShapeAt(value: unknown, path = ''): string | undefined {
  const stack: { v: unknown; at: string }[] = [{ v: value, at: path }];
  while (stack.length > 0) {
    const { v, at } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ v: item, at: `${at}[${i}]` }));
      continue;
    }
    if (Object.hasOwn(v, '$sealed')) return at || 'value';
    for (const [k, child] of Object.entries(v)) stack.push({ v: child, at: at ? `${at}.${k}` : k });
  }
  return undefined;
}
