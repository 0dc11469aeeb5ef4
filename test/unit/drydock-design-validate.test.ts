import { describe, expect, it } from 'vitest';
import { loadDesign, RULES, type ValidationMessage, validateDesign, validationStatus } from '../../layers/core/drydock/design/index.ts';
import { cidrContains, hasHostBits, networkOf, parseCidr, parseIp } from '../../layers/core/drydock/design/ip.ts';
import { fixture, sitePatchedWith, siteTexts } from '../fixtures/drydock/load.ts';

/** Validate the site with a broken fixture replacing its namesakes; loading must be clean. */
function validatePatched(file: string): ValidationMessage[] {
  const { design, messages } = loadDesign([sitePatchedWith(`broken/${file}`)]);
  expect(messages.filter((m) => m.level !== 'Info')).toEqual([]);
  return validateDesign(design);
}

/** `<level> <code> <message>` of the messages that are not Info. */
const findings = (messages: ValidationMessage[]) => messages.filter((m) => m.level !== 'Info').map((m) => `${m.level} ${m.name} ${m.message}`);

const ruleCount = Object.keys(RULES).length - 2; // DD000 and DD001 are the reader's

describe('validateDesign', () => {
  describe('the lab site', () => {
    const { design } = loadDesign(siteTexts());
    const messages = validateDesign(design);

    it('passes every rule with one Info "Validation successful." each, like upstream', () => {
      expect(messages).toHaveLength(ruleCount);
      for (const m of messages) {
        expect(m).toMatchObject({ kind: 'ValidationMessage', error: false, level: 'Info', diagnostic: '', documents: [] });
        expect(m.message).toMatch(/^[A-Za-z ()_-]+: Validation successful\.$/);
      }
      expect(messages.map((m) => m.message)).toContain('Valid OOB Configuration: Validation successful.');
    });

    it('makes a Success status object', () => {
      expect(validationStatus(messages)).toEqual({
        kind: 'Status',
        apiVersion: 'v1.0',
        metadata: {},
        message: 'Site design passed validation',
        reason: null,
        status: 'Success',
        details: { errorCount: 0, messageList: messages },
      });
    });
  });

  it('makes a Failure status object counting the errors', () => {
    const messages = validatePatched('oob-no-credential.yaml');
    const status = validationStatus(messages);
    expect(status).toMatchObject({ status: 'Failure', message: 'Site design failed validation.', reason: 'See detail messages.', details: { errorCount: 4 } });
  });

  describe('SW1001 unique names', () => {
    it('refuses two documents of one kind with one name, across texts, naming both', () => {
      const { design } = loadDesign([...siteTexts(), fixture('broken/duplicate-network.yaml')]);
      const [m] = validateDesign(design).filter((x) => x.error);
      expect(m).toEqual({
        kind: 'ValidationMessage',
        name: 'SW1001',
        message: 'Unique Document Names: Network pxe is defined 2 times.',
        error: true,
        level: 'Error',
        diagnostic: 'Give each document of a kind a unique metadata.name.',
        documents: [
          { schema: 'drydock/Network/v1', name: 'pxe' },
          { schema: 'drydock/Network/v1', name: 'pxe' },
        ],
      });
      expect(design.Network.filter((n) => n.name === 'pxe')).toHaveLength(2);
    });

    it('refuses a second Region', () => {
      const { design } = loadDesign([...siteTexts(), fixture('broken/two-regions.yaml')]);
      expect(findings(validateDesign(design))).toEqual(['Error SW1001 Unique Document Names: The design has 2 Regions (lab1, lab2).']);
    });

    it('warns when there is no Region', () => {
      const { design } = loadDesign(siteTexts().slice(1));
      expect(findings(validateDesign(design))).toContain('Warning SW1001 Unique Document Names: The design has no Region.');
    });
  });

  it('SW1002: every reference resolves — profiles, hardware, networks, links, racks', () => {
    expect(findings(validatePatched('missing-references.yaml'))).toEqual([
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 host_profile references HostProfile nonexistent-profile, which is not in the design.',
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 hardware_profile references HardwareProfile nonexistent-hardware, which is not in the design.',
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 primary_network references Network nonexistent-primary, which is not in the design.',
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 metadata.rack references Rack nonexistent-rack, which is not in the design.',
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 interfaces.eth9.device_link references NetworkLink nonexistent-link, which is not in the design.',
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 interfaces.eth9.networks references Network nonexistent-iface-net, which is not in the design.',
      'Error SW1002 Reference Resolution: BaremetalNode rack1-n01 addressing references Network nonexistent-addr-net, which is not in the design.',
      'Error SW1002 Reference Resolution: NetworkLink pxe-link allowed_networks references Network nonexistent-allowed, which is not in the design.',
      'Error SW1002 Reference Resolution: NetworkLink pxe-link trunking.default_network references Network nonexistent-default, which is not in the design.',
      'Error SW1002 Reference Resolution: Rack rack2 local_networks references Network nonexistent-local, which is not in the design.',
    ]);
  });

  it('SW1003: a host_profile cycle is reported once per profile on it', () => {
    expect(findings(validatePatched('profile-cycle.yaml'))).toEqual([
      'Error SW1003 Host Profile Inheritance: HostProfile compute inherits from itself through host_profile.',
      'Error SW1003 Host Profile Inheritance: HostProfile defaults inherits from itself through host_profile.',
    ]);
  });

  it('DD2006: a network CIDR must parse and have no host bits', () => {
    const messages = validatePatched('network-cidr.yaml');
    expect(findings(messages).filter((f) => f.includes('DD2006'))).toEqual([
      'Error DD2006 CIDR Validity: The provided CIDR 10.1.0.5/24 has host bits set',
      'Error DD2006 CIDR Validity: The CIDR 10.3.0.0 of Network bogus is not valid.',
    ]);
    expect(messages.find((m) => m.message.includes('host bits'))?.diagnostic).toBe('Provide a CIDR acceptable by MAAS: 10.1.0.0/24');
  });

  it('DD2002: route gateways are on their network and present', () => {
    expect(findings(validatePatched('network-cidr.yaml')).filter((f) => f.includes('DD2002'))).toEqual([
      'Error DD2002 IP Locality Check: The gateway IP Address 10.2.0.1 is not within the defined CIDR: 10.0.0.0/24 of pxe.',
      'Error DD2002 IP Locality Check: No gateway found for route {"subnet":"192.168.0.0/16","metric":10}.',
    ]);
  });

  it('DD2002 and DD2005: node addresses are IPs inside their network, and no IP is used twice', () => {
    const messages = validatePatched('addresses.yaml');
    expect(findings(messages)).toEqual([
      'Error DD2002 IP Locality Check: The IP Address 10.9.0.13 is not within the defined CIDR: 10.0.0.0/24 of pxe.',
      'Error DD2002 IP Locality Check: Address 10.0.0.999 of node rack1-n02 on pxe is neither an IP address nor "dhcp".',
      'Error DD2005 Duplicated IP Check: Duplicate IP Address Found: 127.0.0.11',
    ]);
    expect(messages.find((m) => m.name === 'DD2005')?.documents).toEqual([
      { schema: 'drydock/BaremetalNode/v1', name: 'rack2-n03' },
      { schema: 'drydock/BaremetalNode/v1', name: 'rack1-n01' },
    ]);
  });

  it('DD3003: node names may not contain "__"', () => {
    expect(findings(validatePatched('hostname.yaml'))).toEqual(['Error DD3003 Hostname Validity: Node name rack1__n04 contains "__".']);
  });

  describe('DD4001 oob', () => {
    it('needs an address on the oob network (a DHCP one does not count)', () => {
      expect(findings(validatePatched('oob-no-address.yaml'))).toEqual(['Error DD4001 Valid OOB Configuration: OOB address missing for IPMI node rack1-n02.']);
    });

    it('accepts only ipmi and redfish', () => {
      const messages = validatePatched('oob-libvirt.yaml');
      expect(findings(messages)).toEqual(['Error DD4001 Valid OOB Configuration: OOB type libvirt of node rack2-n03 is not supported.']);
    });

    it('needs account and credential after inheritance', () => {
      expect(findings(validatePatched('oob-no-credential.yaml'))).toEqual([
        'Error DD4001 Valid OOB Configuration: OOB parameter account for Redfish node rack1-n01 missing.',
        'Error DD4001 Valid OOB Configuration: OOB parameter account for IPMI node rack1-n02 missing.',
        'Error DD4001 Valid OOB Configuration: OOB parameter credential for IPMI node rack1-n02 missing.',
        'Error DD4001 Valid OOB Configuration: OOB parameter account for IPMI node rack2-n03 missing.',
      ]);
    });
  });

  it('DD2003: size strings follow the grammar and percentages stay within 99%', () => {
    expect(findings(validatePatched('storage-sizes.yaml'))).toEqual([
      'Error DD2003 Storage Sizing: Size 10 GB of partition root on device prim_disk in HostProfile defaults is not valid.',
      'Error DD2003 Storage Sizing: Cumulative logical volume size is greater than 99% in volume group data of node rack1-n01.',
    ]);
  });

  it('SW3002: a kernel parameter referencing a missing hardware-profile entry is a warning', () => {
    const messages = validatePatched('kernel-params.yaml');
    expect(findings(messages)).toEqual([
      'Warning SW3002 Kernel Parameter References: Kernel parameter isolcpus=hardwareprofile:cpuset.missing of node rack1-n02 does not resolve in hardware profile generic; it is kept as written.',
      'Warning SW3002 Kernel Parameter References: Kernel parameter isolcpus=hardwareprofile:cpuset.missing of node rack2-n03 does not resolve in hardware profile generic; it is kept as written.',
    ]);
    expect(validationStatus(messages).status).toBe('Success');
  });

  it('SW4003 and DD4002: asset paths, contents, locations and package lists', () => {
    expect(findings(validatePatched('bootaction-assets.yaml'))).toEqual([
      'Error SW4003 Bootaction Asset Validity: Asset 0 (unit) of BootAction broken-content has no path.',
      'Error SW4003 Bootaction Asset Validity: Asset 1 (file) of BootAction broken-content has neither data nor location.',
      'Error SW4003 Bootaction Asset Validity: Asset 2 (file) of BootAction broken-content has mapping data.',
      'Error SW4003 Bootaction Asset Validity: Asset 3 (file) of BootAction broken-content location ftp://files.lab1/x has an unsupported scheme.',
      "Error DD4002 Bootaction pkg_list Validation: Bootaction has asset of type 'pkg_list' but no valid package data",
      "Error DD4002 Bootaction pkg_list Validation: Bootaction has asset of type 'pkg_list' but no valid package data",
    ]);
  });

  it('SW4004: warns about rack_labels (matches every node) and unknown names in a boot action filter', () => {
    expect(findings(validatePatched('bootaction-filter.yaml'))).toEqual([
      'Warning SW4004 Bootaction Node Filter: BootAction hello filters on rack_labels, which match every node.',
      'Warning SW4004 Bootaction Node Filter: BootAction hello names node rack9-n99, which is not in the design.',
      'Warning SW4004 Bootaction Node Filter: BootAction hello names rack rack9, which is not in the design.',
    ]);
  });

  it('DD4001: warns about nodes no boot action targets', () => {
    const messages = validatePatched('no-hello.yaml');
    expect(findings(messages)).toEqual(['Warning DD4001 Bootaction Definition: Node rack1-n01 is not in scope for any bootactions.']);
    expect(messages.find((m) => m.level === 'Warning')).toMatchObject({ error: false, documents: [{ schema: 'drydock/BaremetalNode/v1', name: 'rack1-n01' }] });
  });

  it('does not throw on a design with broken inheritance and reports each problem once', () => {
    const messages = validatePatched('missing-references.yaml');
    expect(messages.filter((m) => m.message.includes('nonexistent-profile'))).toHaveLength(1);
  });
});

describe('ip helpers', () => {
  it.each([
    ['10.0.0.0/24', '10.0.0.255', true],
    ['10.0.0.0/24', '10.0.1.0', false],
    ['127.0.0.0/8', '127.9.9.9', true],
    ['0.0.0.0/0', '192.0.2.1', true],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['::ffff:0:0/96', '::ffff:10.0.0.1', true],
    ['10.0.0.0/8', '::ffff:10.0.0.1', false],
  ])('%s contains %s: %s', (cidr, ip, expected) => {
    const c = parseCidr(cidr);
    const a = parseIp(ip);
    if (!c || !a) throw new Error('unparsable');
    expect(cidrContains(c, a)).toBe(expected);
  });

  it('spots host bits and names the network', () => {
    expect(hasHostBits(parseCidr('10.1.0.5/24') ?? fail())).toBe(true);
    expect(hasHostBits(parseCidr('10.1.0.0/24') ?? fail())).toBe(false);
    expect(networkOf(parseCidr('10.1.0.5/24') ?? fail())).toBe('10.1.0.0/24');
    expect(networkOf(parseCidr('2001:db8::1/64') ?? fail())).toBe('2001:db8:0:0:0:0:0:0/64');
  });

  it.each(['10.0.0.0', '10.0.0.0/33', '::/129', 'a.b.c.d/8', '10.0.0.0/-1', ''])('%j is not a CIDR', (text) => {
    expect(parseCidr(text)).toBeUndefined();
  });

  it('parses IPv6 forms to the same value', () => {
    expect(parseIp('::1')?.value).toBe(1n);
    expect(parseIp('0:0:0:0:0:0:0:1')?.value).toBe(1n);
    expect(parseIp('fe80::1%eth0')?.value).toBe(parseIp('fe80::1')?.value);
    expect(parseIp('10.0.0.999')).toBeUndefined();
  });
});

function fail(): never {
  throw new Error('unparsable');
}
