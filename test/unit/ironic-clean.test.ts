import { describe, expect, it } from 'vitest';
import type { Job } from '../../layers/core/agent/model.ts';
import { configFromEnv } from '../../layers/core/config.ts';
import { ConcurrentModificationError } from '../../layers/core/errors.ts';
import { allocatable, type BmcInfo, type Node, type NodePatch } from '../../layers/core/inventory/node.ts';
import { checkCleanSteps, cleanFailure, cleansOnProvide, onCleanFinished } from '../../layers/core/ironic/clean.ts';
import { hostPlugin } from '../../layers/core/leases/host-plugin.ts';
import type { Ports } from '../../layers/core/ports.ts';

const bmc = (over: Partial<BmcInfo> = {}): BmcInfo => ({
  driver: 'ipmi',
  driver_info: { ipmi_address: '10.0.0.9', ipmi_username: 'u' },
  conductor_group: 'rack',
  power_state: null,
  target_power_state: null,
  provision_state: 'cleaning',
  target_provision_state: 'manageable',
  provision_updated_at: '2026-01-01T00:00:00.000Z',
  last_error: null,
  maintenance: false,
  maintenance_reason: null,
  properties: {},
  extra: {},
  ...over,
});

const ok = { disks: [{ name: '/dev/vda', size: 10, method: 'zero', verified_bytes: 10 }], boot_mac: null };

describe('settings', () => {
  it('SLIPWAY_AUTOMATED_CLEAN defaults to true (upstream automated_clean), SLIPWAY_CLEAN_TIMEOUT_SECONDS to 3600', () => {
    expect(configFromEnv({})).toMatchObject({ automatedClean: true, cleanTimeoutSeconds: 3600 });
    expect(configFromEnv({ SLIPWAY_AUTOMATED_CLEAN: 'False', SLIPWAY_CLEAN_TIMEOUT_SECONDS: '900' })).toMatchObject({ automatedClean: false, cleanTimeoutSeconds: 900 });
    expect(configFromEnv({ SLIPWAY_AUTOMATED_CLEAN: ' ' }).automatedClean).toBe(true);
    expect(() => configFromEnv({ SLIPWAY_AUTOMATED_CLEAN: 'maybe' })).toThrow(/SLIPWAY_AUTOMATED_CLEAN must be true or false/);
    expect(() => configFromEnv({ SLIPWAY_CLEAN_TIMEOUT_SECONDS: '0' })).toThrow(/SLIPWAY_CLEAN_TIMEOUT_SECONDS/);
  });
});

describe('checkCleanSteps', () => {
  it('takes deploy.erase_devices and erase_devices_metadata, with or without args', () => {
    expect(() => checkCleanSteps([{ interface: 'deploy', step: 'erase_devices' }])).not.toThrow();
    expect(() => checkCleanSteps([{ interface: 'deploy', step: 'erase_devices_metadata', args: {} }])).not.toThrow();
  });

  it("refuses missing steps, other steps and malformed ones with upstream's messages", () => {
    for (const raw of [undefined, null, []]) expect(() => checkCleanSteps(raw)).toThrow('"clean_steps" is required when setting target provision state to clean');
    expect(() => checkCleanSteps([{ interface: 'bios', step: 'apply_configuration', args: { settings: [] } }])).toThrow(
      "node does not support this clean step: {'interface': 'bios', 'step': 'apply_configuration', 'args': {\"settings\":[]}}",
    );
    expect(() => checkCleanSteps([{ interface: 'deploy', step: 'erase_devices', colour: 'red' }])).toThrow(/^Invalid clean_steps: /);
    expect(() => checkCleanSteps({ interface: 'deploy', step: 'erase_devices' })).toThrow(/^Invalid clean_steps: /);
  });
});

describe('cleanFailure', () => {
  it("is the agent's error, a malformed report's first problems, or nothing when the disks were erased", () => {
    expect(cleanFailure({ status: 'succeeded', output: ok })).toBeUndefined();
    expect(cleanFailure({ status: 'succeeded', output: { disks: [], boot_mac: null } })).toBeUndefined();
    expect(cleanFailure({ status: 'failed', error: 'BMC said no' })).toBe('BMC said no');
    expect(cleanFailure({ status: 'failed' })).toBe('the agent gave no reason');
    expect(cleanFailure({ status: 'succeeded', output: undefined })).toMatch(/^the agent's cleaning report is malformed \(output: /);
    expect(cleanFailure({ status: 'succeeded', output: { ...ok, disks: [{ ...ok.disks[0], verified_bytes: -1 }] } })).toMatch(/disks.0.verified_bytes/);
    expect(cleanFailure({ status: 'succeeded', output: { disks: [] } })).toMatch(/boot_mac/);
  });
});

describe('cleansOnProvide', () => {
  const deps = (automatedClean: boolean) => ({ config: { automatedClean } }) as unknown as Ports;
  it("follows the node's automated_clean, else the setting, for a BMC the agent can reach", () => {
    expect(cleansOnProvide(deps(true), bmc())).toBe(true);
    expect(cleansOnProvide(deps(false), bmc())).toBe(false);
    expect(cleansOnProvide(deps(true), bmc({ automated_clean: false }))).toBe(false);
    expect(cleansOnProvide(deps(false), bmc({ automated_clean: true }))).toBe(true);
    // Incomplete driver_info (no IPMI address): nothing to boot the ramdisk with.
    expect(cleansOnProvide(deps(true), bmc({ driver_info: { ipmi_username: 'u' } }))).toBe(false);
  });
});

describe('onCleanFinished', () => {
  function world(over: Partial<BmcInfo> = {}) {
    let node: Node = {
      id: 'n1',
      name: 'n1',
      reservable: true,
      facts: {},
      extra: {},
      addresses: [],
      allocations: {},
      bmc: bmc(over),
      version: 1,
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: null,
    };
    let races = 0;
    const deps = {
      clock: { now: () => new Date('2026-01-01T00:30:00.000Z') },
      nodes: {
        get: async () => structuredClone(node),
        update: async (_id: string, version: number, patch: NodePatch) => {
          if (races > 0) {
            races--;
            node = { ...node, version: node.version + 1 };
          }
          if (version !== node.version) throw new ConcurrentModificationError('changed');
          node = { ...node, ...(patch.bmc ? { bmc: patch.bmc } : {}), version: node.version + 1 };
          return node;
        },
      },
    } as unknown as Ports;
    return { deps, node: () => node, race: (n: number) => void (races = n) };
  }
  const job: Job = {
    id: 'j1',
    site: 'rack',
    kind: 'clean',
    node_id: 'n1',
    payload: {},
    status: 'succeeded',
    attempts: 1,
    max_attempts: 3,
    output: ok,
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: null,
  };

  it('makes a manually cleaned node manageable; a second run (a retry) changes nothing', async () => {
    const w = world();
    await onCleanFinished(w.deps, job);
    expect(w.node().bmc).toMatchObject({ provision_state: 'manageable', target_provision_state: null, last_error: null, provision_updated_at: '2026-01-01T00:30:00.000Z' });
    const version = w.node().version;
    await onCleanFinished(w.deps, job);
    await onCleanFinished(w.deps, { ...job, status: 'failed', error: 'late' });
    expect(w.node().version).toBe(version);
  });

  it('makes a node provided with automated cleaning available, after a lost race', async () => {
    const w = world({ target_provision_state: 'available' });
    w.race(2);
    await onCleanFinished(w.deps, job);
    expect(w.node().bmc).toMatchObject({ provision_state: 'available', target_provision_state: null });
  });

  it('moves a failed clean to clean failed with maintenance on and the reason', async () => {
    const w = world({ target_provision_state: 'available' });
    await onCleanFinished(w.deps, { ...job, status: 'failed', output: undefined, error: 'no DHCP answer' });
    const reason = 'Node n1 failed step deploy.erase_devices: no DHCP answer';
    expect(w.node().bmc).toMatchObject({ provision_state: 'clean failed', target_provision_state: null, maintenance: true, maintenance_reason: reason, last_error: reason });
  });

  it("leaves alone a node that started cleaning after the job was queued (a stale job's result)", async () => {
    const w = world({ provision_updated_at: '2026-01-01T00:10:00.000Z' });
    await onCleanFinished(w.deps, { ...job, status: 'failed', error: 'old' });
    expect(w.node().bmc).toMatchObject({ provision_state: 'cleaning', maintenance: false });
    expect(w.node().version).toBe(1);
  });
});

describe('allocation candidates', () => {
  const node = (id: string, b?: BmcInfo): Node => ({
    id,
    name: id,
    host_id: id.replace(/\D/g, '') || '1',
    reservable: true,
    facts: {},
    extra: {},
    addresses: [],
    allocations: {},
    ...(b ? { bmc: b } : {}),
    version: 1,
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: null,
  });

  it('exclude nodes in maintenance, cleaning or clean failed; a Blazar host without a BMC is one', () => {
    expect(allocatable(node('h1'))).toBe(true);
    expect(allocatable(node('h2', bmc({ provision_state: 'available' })))).toBe(true);
    expect(allocatable(node('h3', bmc({ provision_state: 'available', maintenance: true })))).toBe(false);
    for (const state of ['cleaning', 'clean failed', 'inspecting', 'inspect failed']) expect(allocatable(node('h4', bmc({ provision_state: state })))).toBe(false);
  });

  it('a reservation gets only the allocatable node, and not enough hosts without one', () => {
    const req = {
      reservationId: 'r1',
      params: { min: 1, max: 3, hypervisor_properties: '', resource_properties: '' },
      start: new Date('2026-02-01T00:00:00Z'),
      end: new Date('2026-02-02T00:00:00Z'),
      config: configFromEnv({}),
      current: [] as string[],
      active: false,
    };
    const failed = node('h11', bmc({ provision_state: 'clean failed', maintenance: true }));
    const fine = node('h12', bmc({ provision_state: 'available' }));
    expect(hostPlugin.allocate({ ...req, nodes: [failed, fine] } as never)).toEqual(['h12']);
    expect(() => hostPlugin.allocate({ ...req, nodes: [failed] } as never)).toThrow(/Not enough hosts available/);
    // A node the reservation already holds is kept (a running lease never loses its node here).
    expect(hostPlugin.allocate({ ...req, current: ['h11'], nodes: [failed] } as never)).toEqual(['h11']);
  });
});
