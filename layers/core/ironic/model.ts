import { randomUUID } from 'node:crypto';

/**
 * An Ironic port: one of a node's NICs, by MAC address (the API over it is `bm-ports.ts`). Kept
 * apart from the use-cases, which need `ports.ts`, so that `ports.ts` can name the repository
 * without importing them back.
 */
export interface BaremetalPort {
  uuid: string;
  /** Lower-case, colon-separated. */
  address: string;
  node_uuid: string;
  extra: Record<string, unknown>;
  local_link_connection: Record<string, unknown>;
  pxe_enabled: boolean;
  physical_network: string | null;
  is_smartnic: boolean;
  version: number;
  created_at: string;
  updated_at: string | null;
}

/** A new port with upstream's defaults (PXE-enabled, no extra, not a SmartNIC). */
export function newPort(init: Pick<BaremetalPort, 'address' | 'node_uuid' | 'created_at'> & Partial<BaremetalPort>): BaremetalPort {
  return { uuid: randomUUID(), extra: {}, local_link_connection: {}, pxe_enabled: true, physical_network: null, is_smartnic: false, version: 1, updated_at: null, ...init };
}

export interface BaremetalPortRepository {
  /** Fails with ConflictError `MACAlreadyExists` for a taken MAC, NotFoundError when the node is gone. */
  create(port: BaremetalPort): Promise<void>;
  get(uuid: string): Promise<BaremetalPort | undefined>;
  /** The port holding a (normalized) MAC address. */
  getByAddress(address: string): Promise<BaremetalPort | undefined>;
  list(): Promise<BaremetalPort[]>;
  listByNode(nodeId: string): Promise<BaremetalPort[]>;
  /**
   * Up to `limit` ports in creation order (`<created_at>#<uuid>`) after `after` (before, when
   * `desc`), continuing from `cursor`; `cursor` undefined at the end (issue 16: a page read).
   */
  listByCreation(q: { after?: string; desc: boolean; limit: number }, cursor: unknown): Promise<{ ports: BaremetalPort[]; cursor?: unknown }>;
  /** Writes `next` if the stored port is still at `previous.version`; moves the MAC item when the address changes. */
  update(previous: BaremetalPort, next: BaremetalPort): Promise<void>;
  delete(port: BaremetalPort): Promise<void>;
}
