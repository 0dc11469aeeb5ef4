import { readFileSync } from 'node:fs';
import type { AgentConfig } from '../config.ts';
import { type DriverFactory, JobInputError, type VendorDriver } from '../executor.ts';
import { IpmiDriver, type IpmiCommandEvent } from './ipmi.ts';
import { RedfishDriver } from './redfish.ts';

/**
 * Builds a driver from a node's Ironic-style `driver_info`, with the agent's tunables. A
 * password is either in driver_info (cloud-held) or named by `credential_ref` and resolved from
 * the agent's own config, so it never leaves the site.
 *
 * Vendor methods are the driver-level operations behind Ironic vendor passthru.
 */
function credentials(cfg: AgentConfig, info: Record<string, unknown>, prefix: 'ipmi' | 'redfish'): { username: string; password: string } {
  const ref = info.credential_ref;
  if (typeof ref === 'string') {
    const c = cfg.credentials[ref];
    if (!c) throw new JobInputError(`credential_ref ${ref} is not in this agent's configuration`);
    return c;
  }
  const username = info[`${prefix}_username`];
  const password = info[`${prefix}_password`];
  if (typeof username !== 'string') throw new JobInputError(`${prefix}_username is required`);
  return { username, password: typeof password === 'string' ? password : '' };
}

const str = (v: unknown, name: string): string => {
  if (typeof v !== 'string' || v === '') throw new JobInputError(`${name} is required`);
  return v;
};

const int = (v: unknown, name: string, dflt?: number): number => {
  if (v === undefined && dflt !== undefined) return dflt;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw new JobInputError(`${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
};

/** Ironic's redfish_verify_ca: a boolean, or the path of a CA bundle to verify the BMC with. */
function verifyCa(v: unknown, dflt: boolean): { verifyCa: boolean; caCert?: string } {
  if (v === undefined) return { verifyCa: dflt };
  if (v === false || v === 'false' || v === 'False') return { verifyCa: false };
  if (typeof v === 'string' && v !== 'true' && v !== 'True') {
    try {
      return { verifyCa: true, caCert: readFileSync(v, 'utf8') };
    } catch {
      throw new JobInputError(`redfish_verify_ca names ${v}, which the agent cannot read`);
    }
  }
  return { verifyCa: true };
}

/** Observers of what the drivers send (benches and tests count commands per BMC; never secrets). */
export interface DriverHooks {
  onIpmiCommand?: (event: IpmiCommandEvent) => void;
}

export function driverFactory(cfg: AgentConfig, hooks: DriverHooks = {}): DriverFactory {
  return (driver, info): VendorDriver => {
    if (driver === 'ipmi') {
      const d = new IpmiDriver({
        address: str(info.ipmi_address, 'ipmi_address'),
        port: int(info.ipmi_port, 'ipmi_port', 623),
        ...credentials(cfg, info, 'ipmi'),
        cipherSuite: int(info.ipmi_cipher_suite, 'ipmi_cipher_suite', cfg.ipmi.cipher_suite),
        minCommandIntervalMs: cfg.ipmi.min_command_interval_ms,
        timeoutSeconds: cfg.ipmi.timeout_seconds,
        retries: cfg.ipmi.retries,
        powerTimeoutMs: cfg.ipmi.power_timeout_ms,
        pollIntervalMs: cfg.ipmi.poll_interval_ms,
        ...(hooks.onIpmiCommand ? { onCommand: hooks.onIpmiCommand } : {}),
      });
      return Object.assign(d, {
        vendor: async (method: string, args: Record<string, unknown>) => {
          switch (method) {
            case 'probe':
              return d.chassisStatus();
            case 'send_raw':
              return {
                response: await d.sendRaw(int(args.netfn, 'netfn'), int(args.command, 'command'), ((args.data as unknown[]) ?? []).map((b, i) => int(b, `data[${i}]`))),
              };
            case 'bmc_reset':
              await d.bmcReset(args.warm === false ? 'cold' : 'warm');
              return {};
            default:
              throw new JobInputError(`ipmi has no vendor method ${method}`);
          }
        },
      });
    }
    const d = new RedfishDriver({
      address: str(info.redfish_address, 'redfish_address'),
      ...(typeof info.redfish_system_id === 'string' ? { systemId: info.redfish_system_id } : {}),
      ...credentials(cfg, info, 'redfish'),
      ...verifyCa(info.redfish_verify_ca, cfg.redfish.verify_ca),
      timeoutMs: cfg.redfish.timeout_ms,
      powerTimeoutMs: cfg.redfish.power_timeout_ms,
      pollIntervalMs: cfg.redfish.poll_interval_ms,
    });
    return Object.assign(d, {
      vendor: async (method: string, args: Record<string, unknown>) => {
        switch (method) {
          case 'discover':
            return { systems: await d.listSystems() };
          case 'eject_vmedia':
            // Ironic's argument names a kind of device (cdrom, floppy...), which the driver maps.
            return { ejected: await d.ejectVirtualMedia(typeof args.boot_device === 'string' ? args.boot_device : undefined) };
          case 'create_subscription':
            return d.createEventSubscription({
              destination: str(args.Destination ?? args.destination, 'Destination'),
              ...(Array.isArray(args.EventTypes) ? { eventTypes: args.EventTypes as string[] } : {}),
              ...(typeof args.Context === 'string' ? { context: args.Context } : {}),
            });
          case 'get_all_subscriptions':
            return { subscriptions: await d.listEventSubscriptions() };
          case 'get_subscription': {
            const id = str(args.id, 'id');
            const found = (await d.listEventSubscriptions()).find((x) => x.id === id);
            if (!found) throw new JobInputError(`no event subscription ${id} on this BMC`);
            return found;
          }
          case 'delete_subscription':
            await d.deleteEventSubscription(str(args.id, 'id'));
            return {};
          default:
            throw new JobInputError(`redfish has no vendor method ${method}`);
        }
      },
    });
  };
}
