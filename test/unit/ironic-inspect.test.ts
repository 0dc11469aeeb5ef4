import { describe, expect, it } from 'vitest';
import { JOB_KINDS } from '../../layers/core/agent/kinds.ts';
import type { Job } from '../../layers/core/agent/model.ts';
import { configFromEnv } from '../../layers/core/config.ts';
import { ConcurrentModificationError, ConflictError } from '../../layers/core/errors.ts';
import type { Node, NodePatch } from '../../layers/core/inventory/node.ts';
import { checkInspectable, localGb, onInspectFinished, readInspection, rootDisk } from '../../layers/core/ironic/inspect.ts';
import type { BaremetalPort } from '../../layers/core/ironic/model.ts';
import type { Ports } from '../../layers/core/ports.ts';

const GiB = 1024 ** 3;

describe('rootDisk and localGb', () => {
  it('take the smallest disk of at least 4 GiB (name breaks ties), less 1 GiB for partitioning', () => {
    const disks = [
      { name: '/dev/sdb', size: 500 * GiB },
      { name: '/dev/sda', size: 3 * GiB },
      { name: '/dev/sdd', size: 40 * GiB + 5 },
      { name: '/dev/sdc', size: 40 * GiB + 5 },
    ];
    expect(rootDisk(disks)?.name).toBe('/dev/sdc');
    expect(localGb(disks)).toBe(39);
    expect(localGb([{ name: 'vda', size: 4 * GiB }])).toBe(3);
  });

  it('are none and 0 for a node without a disk of 4 GiB (diskless, as upstream assumes)', () => {
    expect(rootDisk([{ name: 'sda', size: 4 * GiB - 1 }])).toBeUndefined();
    expect(localGb([])).toBe(0);
  });
});

describe('readInspection', () => {
  const ok = { cpus: 2, cpu_arch: 'aarch64', memory_mb: 2048, disks: [], interfaces: [], boot_mac: null };

  it("fails with the agent's error, or a malformed report's first problems", () => {
    expect(readInspection({ status: 'failed', error: 'BMC said no' })).toEqual({ error: 'Failed to inspect hardware. Reason: BMC said no' });
    expect(readInspection({ status: 'succeeded', output: undefined })).toEqual({ error: expect.stringMatching(/malformed \(output: /) });
    expect(readInspection({ status: 'succeeded', output: { ...ok, memory_mb: -1 } })).toEqual({ error: expect.stringMatching(/malformed \(memory_mb: /) });
    expect(readInspection({ status: 'succeeded', output: { ...ok, cpu_arch: 'x\n86' } })).toEqual({ error: expect.stringMatching(/malformed \(cpu_arch: /) });
  });

  it('normalizes MACs, drops loopback and duplicates, marks the boot MAC and notes invalid ones', () => {
    const r = readInspection({
      status: 'succeeded',
      output: {
        ...ok,
        extra_field: 'ignored',
        interfaces: [
          { name: 'lo', mac_address: '00:00:00:00:00:00' },
          { name: 'eth0', mac_address: 'AA-BB-CC-00-11-22' },
          { name: 'eth0.10', mac_address: 'aa:bb:cc:00:11:22' },
          { name: 'eth1', mac_address: '52:54:00:00:00:01' },
          { name: 'ib0', mac_address: '' },
        ],
        boot_mac: '52:54:00:00:00:01',
      },
    });
    expect(r).toEqual({
      found: {
        properties: { cpus: 2, cpu_arch: 'aarch64', memory_mb: 2048, local_gb: 0 },
        nics: [
          { mac: 'aa:bb:cc:00:11:22', pxe: false },
          { mac: '52:54:00:00:00:01', pxe: true },
        ],
        skipped: ['interface ib0 has no valid MAC address'],
      },
    });
  });
});

describe('onInspectFinished', () => {
  /** An inspecting node and an in-memory port table, writes version-checked as the adapters do. */
  function world(failFirstUpdate = false) {
    let node: Node = {
      id: 'n1',
      name: 'n1',
      reservable: true,
      facts: { cpu_info: 'Intel Xeon Gold 6338' },
      extra: {},
      addresses: [],
      allocations: {},
      bmc: {
        driver: 'ipmi',
        driver_info: {},
        conductor_group: 'rack',
        power_state: null,
        target_power_state: null,
        provision_state: 'inspecting',
        target_provision_state: 'manageable',
        last_error: null,
        maintenance: false,
        maintenance_reason: null,
        properties: { capabilities: 'boot_mode:uefi' },
        extra: {},
      },
      version: 1,
      created_at: '2026-01-01T00:00:00.000Z',
      updated_at: null,
    };
    const ports = new Map<string, BaremetalPort>();
    let failing = failFirstUpdate;
    const deps = {
      clock: { now: () => new Date('2026-01-01T00:05:00.000Z') },
      nodes: {
        get: async () => structuredClone(node),
        update: async (_id: string, version: number, patch: NodePatch) => {
          if (failing) {
            failing = false;
            throw new Error('the table is away');
          }
          if (version !== node.version) throw new ConcurrentModificationError('changed');
          node = { ...node, ...(patch.bmc ? { bmc: patch.bmc } : {}), facts: { ...node.facts, ...patch.facts }, version: node.version + 1 };
          return node;
        },
      },
      bmPorts: {
        getByAddress: async (mac: string) => ports.get(mac),
        create: async (p: BaremetalPort) => {
          if (ports.has(p.address)) throw new ConflictError('taken', 'MACAlreadyExists');
          ports.set(p.address, p);
        },
      },
    } as unknown as Ports;
    return { deps, node: () => node, ports };
  }
  const job: Job = {
    id: 'j1',
    site: 'rack',
    kind: 'inspect',
    node_id: 'n1',
    payload: {},
    status: 'succeeded',
    attempts: 1,
    max_attempts: 3,
    output: {
      cpus: 4,
      cpu_arch: 'x86_64',
      memory_mb: 8192,
      disks: [{ name: 'vda', size: 20 * GiB }],
      interfaces: [{ name: 'eth0', mac_address: '52:54:00:aa:bb:01' }],
      boot_mac: '52:54:00:aa:bb:01',
    },
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: null,
  };

  it('is the handler of inspect jobs', () => {
    expect(JOB_KINDS.inspect?.onFinished).toBe(onInspectFinished);
  });

  it('records properties and facts, adds the port and makes the node manageable; a second run changes nothing', async () => {
    const w = world();
    await onInspectFinished(w.deps, job);
    expect(w.node().bmc).toMatchObject({
      provision_state: 'manageable',
      target_provision_state: null,
      last_error: null,
      provision_updated_at: '2026-01-01T00:05:00.000Z',
      properties: { capabilities: 'boot_mode:uefi', cpus: 4, cpu_arch: 'x86_64', memory_mb: 8192, local_gb: 19 },
    });
    // An operator's CPU description stays.
    expect(w.node().facts).toEqual({ cpu_info: 'Intel Xeon Gold 6338', vcpus: 4, memory_mb: 8192, local_gb: 19 });
    expect([...w.ports.values()].map((p) => [p.address, p.pxe_enabled, p.node_uuid])).toEqual([['52:54:00:aa:bb:01', true, 'n1']]);
    const version = w.node().version;
    await onInspectFinished(w.deps, job);
    expect(w.node().version).toBe(version);
    expect(w.ports.size).toBe(1);
  });

  it('runs again after a failure between the ports and the state write without adding a port twice', async () => {
    const w = world(true);
    await expect(onInspectFinished(w.deps, job)).rejects.toThrow('the table is away');
    expect(w.node().bmc!.provision_state).toBe('inspecting');
    expect(w.ports.size).toBe(1);
    await onInspectFinished(w.deps, job);
    expect(w.node().bmc!.provision_state).toBe('manageable');
    expect(w.ports.size).toBe(1);
  });

  it('moves a failed inspection to inspect failed with the reason', async () => {
    const w = world();
    await onInspectFinished(w.deps, { ...job, status: 'failed', output: undefined, error: 'no DHCP answer' });
    expect(w.node().bmc).toMatchObject({ provision_state: 'inspect failed', target_provision_state: null, last_error: 'Failed to inspect hardware. Reason: no DHCP answer' });
    expect(w.ports.size).toBe(0);
  });
});

describe('checkInspectable', () => {
  const bmc = {
    driver: 'ipmi' as const,
    driver_info: { ipmi_address: '10.0.0.9', ipmi_username: 'admin', ipmi_password: { $sealed: 'v1:x' } } as Record<string, unknown>,
    conductor_group: '',
    power_state: null,
    target_power_state: null,
    provision_state: 'manageable',
    last_error: null,
    maintenance: false,
    maintenance_reason: null,
    properties: {},
    extra: {},
  };
  const node = (over: Partial<typeof bmc>) => ({ id: 'n1', name: 'n1', reservable: true, facts: {}, extra: {}, addresses: [], allocations: {}, version: 1, created_at: '', updated_at: null, bmc: { ...bmc, ...over } });

  it('takes a complete driver_info (sealed secrets count), refuses maintenance and an incomplete BMC as upstream words it', () => {
    expect(() => checkInspectable(node({}))).not.toThrow();
    expect(() => checkInspectable(node({ maintenance: true }))).toThrow("The inspection operation can't be performed on node n1 because it's in maintenance mode.");
    expect(() => checkInspectable(node({ driver_info: { ipmi_username: 'admin' } }))).toThrow(
      /^Failed to inspect hardware\. Reason: RPC inspect_hardware failed to validate inspection or power info\. Error: Invalid driver_info for driver ipmi: ipmi_address: /,
    );
  });
});

describe('SLIPWAY_INSPECT_TIMEOUT_SECONDS', () => {
  it('defaults to 600 and takes a positive integer', () => {
    expect(configFromEnv({}).inspectTimeoutSeconds).toBe(600);
    expect(configFromEnv({ SLIPWAY_INSPECT_TIMEOUT_SECONDS: '1200' }).inspectTimeoutSeconds).toBe(1200);
    expect(() => configFromEnv({ SLIPWAY_INSPECT_TIMEOUT_SECONDS: '0' })).toThrow(/SLIPWAY_INSPECT_TIMEOUT_SECONDS/);
  });
});
