import { BmcError, type BmcDriver, type BootDevice, type PowerAction } from './drivers/types.ts';

/**
 * What a job asks of a BMC, by kind. Jobs name the node's driver and its Ironic-style
 * `driver_info`; `makeDriver` turns that into a driver (resolving on-prem credentials).
 *
 *   power        { target: PowerAction }            → { power_state }
 *   power_state  {}                                 → { power_state }
 *   boot_device  { boot_device, persistent }        → { boot_device, persistent }
 *   vendor       { method, args }                   → the method's answer
 */
export interface JobPayload {
  driver: 'ipmi' | 'redfish';
  driver_info: Record<string, unknown>;
  [k: string]: unknown;
}

export type VendorDriver = BmcDriver & { vendor(method: string, args: Record<string, unknown>): Promise<unknown> };
export type DriverFactory = (driver: JobPayload['driver'], info: Record<string, unknown>) => VendorDriver;

/** Failures that are the job's own (bad input), as opposed to the BMC's. */
export class JobInputError extends Error {}

const POWER_ACTIONS: readonly PowerAction[] = ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'];

/** The key under which commands to one BMC are serialized. */
export function bmcKey(p: JobPayload): string {
  const i = p.driver_info;
  return p.driver === 'ipmi' ? `ipmi:${i.ipmi_address}:${i.ipmi_port ?? 623}` : `redfish:${i.redfish_address}`;
}

export function parsePayload(kind: string, payload: Record<string, unknown>): JobPayload {
  if (payload.driver !== 'ipmi' && payload.driver !== 'redfish') throw new JobInputError(`job ${kind}: unknown driver ${String(payload.driver)}`);
  if (!payload.driver_info || typeof payload.driver_info !== 'object') throw new JobInputError(`job ${kind}: driver_info missing`);
  return payload as JobPayload;
}

export async function execute(kind: string, payload: JobPayload, makeDriver: DriverFactory): Promise<unknown> {
  const driver = makeDriver(payload.driver, payload.driver_info);
  switch (kind) {
    case 'power': {
      const target = payload.target as PowerAction;
      if (!POWER_ACTIONS.includes(target)) throw new JobInputError(`unknown power target ${String(payload.target)}`);
      return { power_state: await driver.setPowerState(target) };
    }
    case 'power_state':
      return { power_state: await driver.getPowerState() };
    case 'boot_device': {
      const dev = payload.boot_device as BootDevice;
      if (dev !== 'pxe' && dev !== 'disk') throw new JobInputError(`unknown boot device ${String(payload.boot_device)}`);
      await driver.setBootDevice(dev, payload.persistent === true);
      return { boot_device: dev, persistent: payload.persistent === true };
    }
    case 'vendor':
      return driver.vendor(String(payload.method), (payload.args as Record<string, unknown>) ?? {});
    default:
      throw new JobInputError(`unknown job kind ${kind}`);
  }
}

/** Error text for the job result: what failed and why, never a secret. */
export function describeFailure(err: unknown): string {
  if (err instanceof BmcError) return `${err.code}: ${err.message}`;
  if (err instanceof JobInputError) return `invalid job: ${err.message}`;
  return `agent error: ${err instanceof Error ? err.message : String(err)}`;
}
