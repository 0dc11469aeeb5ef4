/**
 * The narrow driver interfaces of the on-prem agent (house style 5, after Ironic's
 * `drivers/base.py`): power, management (boot device) and per-driver vendor operations. IPMI
 * and Redfish are implementations; the agent's job loop only knows these interfaces.
 *
 * Power states and actions use Ironic's vocabulary exactly, so that what the BMC reports can be
 * stored as the node's `power_state` unchanged.
 */
export type PowerState = 'power on' | 'power off';
export type PowerAction = 'power on' | 'power off' | 'rebooting' | 'soft power off' | 'soft rebooting';
/** What the agent can set: Ironic's supported boot devices for these drivers. */
export type BootDevice = 'pxe' | 'disk';

/**
 * The boot device as the BMC reports it (Ironic's `GET …/management/boot_device`), in Ironic's
 * names where the BMC's value has one: 'pxe', 'disk', 'cdrom', 'bios', 'safe', 'floppy',
 * 'uefihttp'. `boot_device` is null when the BMC has no override in effect (or one without such a
 * name); `persistent` is null when there is no override, else whether it holds for every boot
 * (true) or only the next one (false).
 */
export interface BootDeviceReading {
  boot_device: string | null;
  persistent: boolean | null;
}

export interface PowerDriver {
  getPowerState(): Promise<PowerState>;
  /**
   * Carries out the action and waits (bounded) until the BMC reports the resulting state;
   * returns that state. Reboots end in 'power on'.
   */
  setPowerState(action: PowerAction): Promise<PowerState>;
}

export interface ManagementDriver {
  /** Next boot from `device`; `persistent` keeps it for every later boot. */
  setBootDevice(device: BootDevice, persistent: boolean): Promise<void>;
  /**
   * Reads the boot override back from the BMC (a read only: changes nothing). An override that
   * is set but no longer in effect (used up by a boot, timed out, disabled) reads as none:
   * `{ boot_device: null, persistent: null }`.
   */
  getBootDevice(): Promise<BootDeviceReading>;
}

export interface BmcDriver extends PowerDriver, ManagementDriver {
  readonly kind: 'ipmi' | 'redfish';
}

/**
 * Why a BMC operation failed, for clear error text and retry decisions: `unreachable` and
 * `timeout` may be retried; `auth`, `unsupported` and `protocol` may not.
 */
export type BmcErrorCode = 'unreachable' | 'auth' | 'timeout' | 'unsupported' | 'protocol';

export class BmcError extends Error {
  constructor(
    readonly code: BmcErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BmcError';
  }

  get retryable(): boolean {
    return this.code === 'unreachable' || this.code === 'timeout';
  }
}
