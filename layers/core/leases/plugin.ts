import type { Config } from '../config.ts';
import type { Node } from '../inventory/node.ts';
import type { Reservation } from './model.ts';

/**
 * The contract between the lease engine and a reservable resource type (Blazar's
 * `plugins/base.py`). The engine knows leases, reservations, events and calendars; a plugin
 * knows what its resources are and how to pick them. Adding a resource type means adding a
 * plugin to `PLUGINS`, not changing the engine.
 */
export interface AllocationRequest {
  /** Parameters as validated by the plugin. */
  params: Record<string, unknown>;
  start: Date;
  end: Date;
  /** Every node with its calendar as currently planned (earlier reservations of this lease included). */
  nodes: readonly Node[];
  /** The reservation being (re)allocated: its own allocations never conflict with it. */
  reservationId: string;
  /** Nodes it holds now (update); empty on create. */
  current: readonly string[];
  /** True once the reservation is running: its nodes may not be swapped (upstream bug #1692805). */
  active: boolean;
  config: Config;
  /** Which try this is (0 first); a retry after a lost race reads fresh calendars. */
  attempt: number;
}

export interface ResourcePlugin {
  readonly resourceType: string;
  /** Validates create parameters (400 on error) and returns the stored form. */
  validateCreate(raw: Record<string, unknown>): Record<string, unknown>;
  /** Merges and validates update parameters over the current ones. */
  validateUpdate(current: Record<string, unknown>, raw: Record<string, unknown>): Record<string, unknown>;
  /** Chooses the node ids for the reservation, or throws NotEnoughHostsError. */
  allocate(req: AllocationRequest): string[];
  /** The plugin's fields in the reservation's API view. */
  view(res: Reservation): Record<string, unknown>;
  /** Property keys a reservation depends on (a host may not change them while reserved). */
  referencedProperties(params: Record<string, unknown>): string[];
}
