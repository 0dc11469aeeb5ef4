import { isIPv4, isIPv6 } from 'node:net';

/**
 * Just enough IP arithmetic for design validation (upstream uses netaddr/ipaddress): parse an
 * address or a CIDR, test membership, and spot host bits in a CIDR.
 */
export interface Ip {
  version: 4 | 6;
  value: bigint;
}

export interface Cidr {
  version: 4 | 6;
  /** The address as written (host bits included). */
  address: bigint;
  prefix: number;
}

const bits = (version: 4 | 6) => (version === 4 ? 32 : 128);

export function parseIp(text: string): Ip | undefined {
  if (isIPv4(text)) {
    const value = text.split('.').reduce((acc, octet) => (acc << 8n) | BigInt(octet), 0n);
    return { version: 4, value };
  }
  if (isIPv6(text)) return { version: 6, value: parseIPv6(text) };
  return undefined;
}

function parseIPv6(text: string): bigint {
  // Zone ids (`fe80::1%eth0`) do not take part in the value.
  let s = text.split('%')[0] as string;
  // An embedded IPv4 tail (`::ffff:10.0.0.1`) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIp(v4[1] as string)?.value ?? 0n;
    s = `${s.slice(0, -(v4[1] as string).length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n);
}

export function parseCidr(text: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  const ip = parseIp(m[1] as string);
  const prefix = Number(m[2]);
  if (!ip || prefix > bits(ip.version)) return undefined;
  return { version: ip.version, address: ip.value, prefix };
}

function mask(c: Cidr): bigint {
  const width = BigInt(bits(c.version));
  return ((1n << width) - 1n) ^ ((1n << (width - BigInt(c.prefix))) - 1n);
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  return c.version === ip.version && (c.address & mask(c)) === (ip.value & mask(c));
}

export function hasHostBits(c: Cidr): boolean {
  return (c.address & ~mask(c)) !== 0n;
}

/** `10.0.0.5/24` → `10.0.0.0/24` (what upstream suggests as the fix). */
export function networkOf(c: Cidr): string {
  const net = c.address & mask(c);
  if (c.version === 4) return `${[24n, 16n, 8n, 0n].map((s) => (net >> s) & 0xffn).join('.')}/${c.prefix}`;
  const groups = Array.from({ length: 8 }, (_, i) => ((net >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${groups.join(':')}/${c.prefix}`;
}
