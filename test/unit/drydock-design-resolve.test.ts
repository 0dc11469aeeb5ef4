import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { NotFoundError, ValidationError } from '../../layers/core/errors.ts';
import {
  effectiveData,
  findDocument,
  loadDesign,
  mergePatch,
  parseSize,
  resolveHardwareReference,
  resolveNode,
  type SiteDesign,
} from '../../layers/core/drydock/design/index.ts';
import { siteTexts } from '../fixtures/drydock/load.ts';

/** A design from inline documents: `[kind, name, data]` (written as YAML 1.1, which `yes` needs quoted in). */
function designOf(...docs: [string, string, unknown][]): SiteDesign {
  const text = docs.map(([kind, name, data]) => `---\n${stringify({ schema: `drydock/${kind}/v1`, metadata: { schema: 'metadata/Document/v1', name }, data }, { version: '1.1' })}`).join('');
  const { design, messages } = loadDesign([text]);
  expect(messages).toEqual([]);
  return design;
}

const oob = { network: 'oob', address: '127.0.0.1' };

describe('mergePatch (host profile inheritance)', () => {
  it('merges mappings key by key, recursively', () => {
    expect(mergePatch({ a: 1, m: { x: 1, y: 2 } }, { b: 2, m: { y: 3, z: 4 } })).toEqual({ a: 1, b: 2, m: { x: 1, y: 3, z: 4 } });
  });

  it('replaces lists and scalars whole: the child wins', () => {
    expect(mergePatch({ tags: ['a', 'b'], mtu: 1500 }, { tags: ['c'], mtu: 9000 })).toEqual({ tags: ['c'], mtu: 9000 });
  });

  it('removes a key whose child value is null', () => {
    expect(mergePatch({ interfaces: { pxe: { device_link: 'l' }, bond0: { device_link: 'g' } } }, { interfaces: { bond0: null, gone: null } })).toEqual({
      interfaces: { pxe: { device_link: 'l' } },
    });
  });

  it('replaces a mapping with a non-mapping and vice versa', () => {
    expect(mergePatch({ a: { x: 1 } }, { a: 'flat' })).toEqual({ a: 'flat' });
    expect(mergePatch({ a: 'flat' }, { a: { x: 1 } })).toEqual({ a: { x: 1 } });
  });

  it('keeps the parent key order', () => {
    expect(Object.keys(mergePatch({ a: 1, b: 2, c: 3 }, { d: 4, b: 5 }) as object)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('shares nothing with its inputs', () => {
    const parent = { m: { x: [1] } };
    const child = { m: { y: [2] } };
    const out = mergePatch(parent, child) as { m: { x: number[]; y: number[] } };
    out.m.x.push(9);
    out.m.y.push(9);
    expect(parent).toEqual({ m: { x: [1] } });
    expect(child).toEqual({ m: { y: [2] } });
  });
});

describe('resolveNode', () => {
  const { design } = loadDesign(siteTexts());

  it('resolves a control node: redfish BMC on its loopback address and port, profiles nearest first', () => {
    const n = resolveNode(design, 'rack1-n01');
    expect(n.profiles).toEqual(['control', 'defaults']);
    expect(n.document).toEqual({ schema: 'drydock/BaremetalNode/v1', name: 'rack1-n01' });
    expect(n.oob).toEqual({ type: 'redfish', network: 'oob', address: '127.0.0.11', port: 8001, account: 'admin', credential: 'control-bmc-secret' });
    expect(n.addresses).toEqual([
      { network: 'oob', address: '127.0.0.11' },
      { network: 'pxe', address: '10.0.0.11' },
      { network: 'storage', address: '10.1.0.11' },
    ]);
    expect(n.labels).toEqual({ site: 'lab1', role: 'control', zone: 'a' });
    expect(n.tags).toEqual(['control']);
    expect(n.rack).toBe('rack1');
    expect(n.boot_mac).toBe('52:54:00:00:00:11');
    expect(n.hardware_profile).toBe('generic');
    expect(n.primary_network).toBe('pxe');
    expect(Object.keys(n.data.interfaces ?? {})).toEqual(['pxe', 'bond0']);
    expect(n.data.storage?.volume_groups?.data?.logical_volumes?.map((lv) => lv.size)).toEqual(['40%', '50%']);
    expect(n.data.platform).toEqual({ image: 'jammy', kernel: 'ga-22.04', kernel_params: { console: 'ttyS1,115200n8', quiet: true } });
  });

  it('returns data that shares nothing with the design', () => {
    const n = resolveNode(design, 'rack1-n02');
    n.tags.push('x');
    n.data.metadata?.tags?.push('y');
    n.data.interfaces?.pxe?.networks?.push('z');
    expect(resolveNode(design, 'rack1-n02').data.interfaces?.pxe?.networks).toEqual(['pxe']);
    expect(resolveNode(design, 'rack1-n02').tags).toEqual(['compute', 'gpu']);
  });

  it('resolves a compute node: the inherited bond removed, its own tags, hardware references in kernel parameters', () => {
    const n = resolveNode(design, 'rack1-n02');
    expect(n.profiles).toEqual(['compute', 'defaults']);
    expect(n.oob).toEqual({ type: 'ipmi', network: 'oob', address: '127.0.0.12', port: 9002, account: 'admin', credential: 'compute-bmc-secret' });
    expect(Object.keys(n.data.interfaces ?? {})).toEqual(['pxe']);
    expect(n.tags).toEqual(['compute', 'gpu']);
    expect(n.labels).toEqual({ site: 'lab1', role: 'compute', zone: 'a' });
    expect(n.kernel_params).toEqual({ console: 'ttyS1,115200n8', quiet: true, isolcpus: '2-15,34-47', hugepagesz: '1G', hugepages: 16 });
    // The effective data keeps the references as written.
    expect(n.data.platform?.kernel_params?.isolcpus).toBe('hardwareprofile:cpuset.sriov');
  });

  it('lets a node override one oob field and keep the inherited others', () => {
    const n = resolveNode(design, 'rack2-n03');
    expect(n.oob).toEqual({ type: 'ipmi', network: 'oob', address: '127.0.0.13', port: 9003, account: 'admin', credential: 'n03-bmc-secret' });
    expect(n.tags).toEqual(['compute']);
    expect(n.labels.zone).toBe('b');
  });

  it('answers the effective data of a host profile too', () => {
    const compute = findDocument(design, 'HostProfile', 'compute');
    if (!compute) throw new Error('no compute profile');
    const { data, chain } = effectiveData(design, compute);
    expect(chain.map((p) => p.name)).toEqual(['defaults']);
    expect(data.host_profile).toBe('defaults');
    expect(data.oob).toEqual({ type: 'ipmi', network: 'oob', account: 'admin', credential: 'compute-bmc-secret' });
    expect(data.metadata?.owner_data).toEqual({ site: 'lab1', role: 'compute' });
  });

  it('throws NotFoundError for a node not in the design', () => {
    expect(() => resolveNode(design, 'rack9-n99')).toThrow(NotFoundError);
  });

  it('throws ValidationError for a missing profile or a cycle', () => {
    const missing = designOf(['BaremetalNode', 'n1', { host_profile: 'nope', addressing: [oob] }]);
    expect(() => resolveNode(missing, 'n1')).toThrow(ValidationError);
    expect(() => resolveNode(missing, 'n1')).toThrow('BaremetalNode n1 references HostProfile nope, which is not in the design.');
    const cycle = designOf(['HostProfile', 'a', { host_profile: 'b' }], ['HostProfile', 'b', { host_profile: 'a' }], ['BaremetalNode', 'n1', { host_profile: 'a', addressing: [oob] }]);
    expect(() => resolveNode(cycle, 'n1')).toThrow(/closes a host_profile cycle through HostProfile a/);
    const self = designOf(['HostProfile', 'a', { host_profile: 'a' }], ['BaremetalNode', 'n1', { host_profile: 'a', addressing: [oob] }]);
    expect(() => resolveNode(self, 'n1')).toThrow(ValidationError);
  });

  describe('inheritance over three levels', () => {
    const design3 = designOf(
      [
        'HostProfile',
        'base',
        {
          oob: { type: 'ipmi', network: 'oob', account: 'root', credential: 'base' },
          interfaces: { eno1: { device_link: 'l1', networks: ['a'] }, eno2: { device_link: 'l2' } },
          metadata: { tags: ['base'], owner_data: { tier: 'base', keep: 'yes' } },
          platform: { image: 'focal', kernel_params: { quiet: true } },
        },
      ],
      ['HostProfile', 'middle', { host_profile: 'base', interfaces: { eno2: null }, metadata: { owner_data: { tier: 'middle' } }, platform: { image: 'jammy' } }],
      ['HostProfile', 'leaf', { host_profile: 'middle', oob: { credential: 'leaf' }, interfaces: { eno2: { device_link: 'l3' }, eno1: { networks: ['b'] } } }],
      ['BaremetalNode', 'n1', { host_profile: 'leaf', addressing: [oob], metadata: { tags: ['mine'] } }],
      ['BaremetalNode', 'n2', { host_profile: 'middle', addressing: [{ network: 'oob', address: 'dhcp' }] }],
    );

    it('applies the farthest ancestor first and the node last', () => {
      const n = resolveNode(design3, 'n1');
      expect(n.profiles).toEqual(['leaf', 'middle', 'base']);
      expect(n.oob).toMatchObject({ account: 'root', credential: 'leaf', address: '127.0.0.1' });
      expect(n.data.platform).toEqual({ image: 'jammy', kernel_params: { quiet: true } });
      expect(n.labels).toEqual({ tier: 'middle', keep: 'yes' });
      expect(n.tags).toEqual(['mine']);
    });

    it('lets a descendant re-add an interface an ancestor removed, and extend one field of another', () => {
      const n = resolveNode(design3, 'n1');
      expect(n.data.interfaces).toEqual({ eno1: { device_link: 'l1', networks: ['b'] }, eno2: { device_link: 'l3' } });
      expect(resolveNode(design3, 'n2').data.interfaces).toEqual({ eno1: { device_link: 'l1', networks: ['a'] } });
    });

    it('gives no oob address for a DHCP address on the oob network', () => {
      expect(resolveNode(design3, 'n2').oob.address).toBeNull();
    });
  });
});

describe('resolveHardwareReference', () => {
  const hw = { cpu_sets: { sriov: '2,4' }, hugepages: { dpdk: { size: '1G', count: 8 } } };

  it.each([
    ['hardwareprofile:cpuset.sriov', { isReference: true, value: '2,4' }],
    ['hardwareprofile:hugepages.dpdk.size', { isReference: true, value: '1G' }],
    ['hardwareprofile:hugepages.dpdk.count', { isReference: true, value: 8 }],
    ['hardwareprofile.hugepages.dpdk.count', { isReference: true, value: 8 }],
    ['hardwareprofile:cpuset.other', { isReference: true, value: undefined }],
    ['hardwareprofile:hugepages.other.size', { isReference: true, value: undefined }],
    ['ttyS1,115200', { isReference: false }],
    ['hardwareprofile:bios.version', { isReference: false }],
  ])('%s', (value, expected) => {
    expect(resolveHardwareReference(value, hw)).toEqual(expected);
  });

  it('finds nothing without a hardware profile', () => {
    expect(resolveHardwareReference('hardwareprofile:cpuset.sriov', undefined)).toEqual({ isReference: true, value: undefined });
  });
});

describe('parseSize', () => {
  it.each([
    ['10g', { grow: false, bytes: 10e9 }],
    ['>100g', { grow: true, bytes: 100e9 }],
    ['99%', { grow: false, percent: 99 }],
    ['>10%', { grow: true, percent: 10 }],
    ['512m', { grow: false, bytes: 512e6 }],
    ['512MB', { grow: false, bytes: 512e6 }],
    ['2T', { grow: false, bytes: 2e12 }],
    ['2tb', { grow: false, bytes: 2e12 }],
    ['1Mi', { grow: false, bytes: 2 ** 20 }],
    ['1mib', { grow: false, bytes: 2 ** 20 }],
    ['30GiB', { grow: false, bytes: 30 * 2 ** 30 }],
    ['1gi', { grow: false, bytes: 2 ** 30 }],
    ['4TiB', { grow: false, bytes: 4 * 2 ** 40 }],
    ['0g', { grow: false, bytes: 0 }],
  ])('%s is a size', (text, expected) => {
    expect(parseSize(text)).toEqual(expected);
  });

  it.each(['10', '10 g', '10Gb', '10gB', '10k', '1.5g', '-1g', '>', 'g', '101%', '>>1g', '10g ', '', '99999999999tb'])('%j is not a size', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});
