import { isIP } from 'node:net';
import { DomainError, NotFoundError, ValidationError } from '../errors.ts';

/**
 * Commissaire's entities (upstream-apis.md §2.3, §2.6) as Slipway stores them. Membership is kept
 * on both sides and changed only in transactions: the cluster's `hostset` (the order clients see)
 * and the host's `cluster` (so a host belongs to at most one cluster, and deleting a host knows
 * which hostset to leave without reading every cluster).
 */
export const HOST_STATUSES = ['investigating', 'bootstrapping', 'active', 'disassociated', 'failed'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];
/** Hosts that may join a cluster (§2.4: "bootstrapped"). */
export const READY_STATUSES: readonly HostStatus[] = ['active', 'disassociated'];

export const OPERATION_KINDS = ['deploy', 'upgrade', 'restart'] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];
export type OperationStatus = 'in_process' | 'finished' | 'failed';

export const NETWORK_TYPES = ['flannel_etcd', 'flannel_server'] as const;
export type NetworkType = (typeof NETWORK_TYPES)[number];
export const CONTAINER_MANAGER_TYPES = ['openshift', 'trivial'] as const;
export type ContainerManagerType = (typeof CONTAINER_MANAGER_TYPES)[number];

export interface CommissaireHost {
  /** Canonical form (see `canonicalAddress`); the key of the host. */
  address: string;
  /** '' only for records written by hand; registration starts at `investigating`. */
  status: HostStatus | '';
  os: string;
  cpus: number;
  /** kB */
  memory: number;
  /** kB of disk */
  space: number;
  /** ISO-8601 UTC of the last check, or ''. */
  last_check: string;
  /** An external storage plugin owning the record; always '' here. */
  source: string;
  /** Why the host is in its status (a failed investigation's reason); ours, not upstream's. */
  status_reason: string;
  remote_user: string;
  /** SSH port (ours: upstream always uses 22; tests and NATed hosts need another). */
  ssh_port?: number;
  /** The host key fingerprint (`SHA256:…`) seen at the investigation; later SSH jobs refuse any other. */
  host_key_sha256?: string;
  /** The base64 private key as the client gave it, sealed with `deps.secrets`. Never logged or listed. */
  ssh_priv_key_sealed: string;
  /** SHA-256 (hex) of the key as given, to compare a re-registration without opening the seal. */
  ssh_priv_key_sha256: string;
  /** The inventory node whose `addresses` contain this address. */
  node_id: string;
  /** The cluster whose hostset holds this host (at most one). */
  cluster?: string;
  created_at: string;
  updated_at: string | null;
}

/** What the investigator and bootstrapper may change on a host (never the credentials). */
export type HostPatch = Partial<Pick<CommissaireHost, 'status' | 'status_reason' | 'os' | 'cpus' | 'memory' | 'space' | 'last_check' | 'host_key_sha256'>>;

export interface Cluster {
  name: string;
  network: string;
  /** '' = unmanaged. */
  container_manager: string;
  hostset: string[];
  /** Bumped by every hostset change; `PUT …/hosts` compares it (compare-and-set). */
  hostset_version: number;
  /** The kind of operation in process, while one is (the lock that refuses a second one). */
  operation?: OperationKind;
  created_at: string;
  updated_at: string | null;
}

export interface Network {
  name: string;
  type: NetworkType;
  options: Record<string, unknown>;
}

export interface ContainerManager {
  name: string;
  type: ContainerManagerType;
  options: Record<string, unknown>;
}

/** The last deploy / upgrade / restart of a cluster (§2.5); `done` is deployed|upgraded|restarted. */
export interface ClusterOperation {
  cluster: string;
  kind: OperationKind;
  status: OperationStatus;
  /** Deploy only. */
  version?: string;
  done: string[];
  in_process: string[];
  started_at: string;
  /** ISO-8601 UTC, or '' until finished. */
  finished_at: string;
}

/** Always there, never stored (§2.3). */
export const DEFAULT_NETWORK: Network = { name: 'default', type: 'flannel_etcd', options: {} };

/** Upstream's route requirement for cluster, network and container-manager names. */
export const NAME_PATTERN = /^[a-zA-Z0-9\-_]+$/;

/**
 * 405 for a host that may not join a cluster yet (upstream's answer; not a wrong HTTP method,
 * so no `Allow` header).
 */
export class HostNotReadyError extends DomainError {
  override readonly name: string = 'HostNotReadyError';
  readonly statusCode = 405;
  readonly errorName = 'HOST_NOT_READY';
}

/**
 * A host address as stored: IPv4 as given, IPv6 in its canonical compressed lower-case form (so
 * `0:0:0:0:0:0:0:1`, `::1` and `%3A%3A1` name one host). Zone ids (`fe80::1%eth0`) are refused:
 * they mean nothing outside the machine that wrote them. Path values may arrive still
 * URL-encoded (API Gateway) or decoded (the local server); decoding twice is harmless because a
 * valid address never contains `%`.
 */
export function canonicalAddress(raw: string): string | undefined {
  let value = raw.trim();
  if (/%[0-9A-Fa-f]{2}/.test(value)) {
    try {
      value = decodeURIComponent(value);
    } catch {
      return undefined;
    }
  }
  const family = isIP(value);
  if (family === 4) return value;
  if (family === 6 && !value.includes('%')) return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  return undefined;
}

/** A path or body address: 400 unless it is an IPv4 or IPv6 address. */
export function parseAddress(raw: string): string {
  const a = canonicalAddress(raw);
  if (!a) throw new ValidationError(`${JSON.stringify(raw)} is not an IPv4 or IPv6 address`);
  return a;
}

/**
 * A cluster, network or container-manager name from the path. Upstream does not route other
 * names, so reading one is 404; creating one is 400.
 */
export function parseName(raw: string, forCreate = false): string {
  if (NAME_PATTERN.test(raw)) return raw;
  if (forCreate) throw new ValidationError(`Names may contain letters, digits, - and _ only: ${JSON.stringify(raw)}`);
  throw new NotFoundError(`No object named ${JSON.stringify(raw)}`);
}

export interface ClusterHealth {
  status: 'ok' | 'degraded' | 'failed';
  hosts: { total: number; available: number; unavailable: number };
}

/**
 * Computed on read (§2.3): a member is available iff `active`; any other member degrades the
 * cluster; members and none active is `failed`; no members is `ok`. A member whose host record
 * is missing counts as unavailable.
 */
export function clusterHealth(hostset: readonly string[], statusOf: (address: string) => string | undefined): ClusterHealth {
  const total = hostset.length;
  const available = hostset.filter((a) => statusOf(a) === 'active').length;
  const unavailable = total - available;
  const status = total > 0 && available === 0 ? 'failed' : unavailable > 0 ? 'degraded' : 'ok';
  return { status, hosts: { total, available, unavailable } };
}

/** Order-insensitive, duplicate-insensitive comparison (upstream compares Python sets). */
export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  const y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

/** A stable JSON text of a value (sorted keys), to compare stored definitions in a condition. */
export function fingerprint(value: unknown): string {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(norm);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v as Record<string, unknown>)
          .sort()
          .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, norm((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(norm(value));
}
