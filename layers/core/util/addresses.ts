import { BlockList, isIP } from 'node:net';

/**
 * Which side of the network a URL's host is on, for the fetches the control plane makes on an
 * operator's behalf (a design_ref, a boot-action asset `location`, a container manager's
 * `server_url`). The functions run outside any VPC: an address inside a site is reached only by
 * that site's agent, and the cloud never fetches one itself (on Lambda a loopback or link-local
 * address is the runtime's own API: a fetch there is a request forgery, not a design).
 *
 * Patterns (`SLIPWAY_SITE_ADDRESSES`, `SLIPWAY_CLOUD_FETCH_ADDRESSES`):
 *   `10.1.0.0/16`, `fd00:1::/64`  an address range (CIDR); an address alone is one address
 *   `*.site1.example.com`        any name under site1.example.com (not the name itself)
 *   `deckhand`, `repo.example`   that one name (case-insensitive)
 * A pattern names host addresses only: a host *name* that resolves to a site's address is
 * matched by its name, so a site's internal names are listed as names.
 */

/** Where a URL is fetched from. */
export type Reach = { via: 'cloud' } | { via: 'agent'; site: string } | { via: 'refused'; reason: string };

/** The address settings as `Config` holds them. */
export interface AddressRules {
  /** Site name → patterns of the addresses only that site's agent reaches. */
  sites: Record<string, string[]>;
  /** Patterns the control plane fetches itself although they look internal (the local stack's loopback). */
  cloud: string[];
}

type Matcher = (host: string, ip: 4 | 6 | 0) => boolean;

/** A pattern as a matcher; an Error naming the pattern when it is none of the forms above. */
export function addressMatcher(pattern: string): Matcher {
  const p = pattern.trim().toLowerCase();
  const slash = p.indexOf('/');
  const addr = slash >= 0 ? p.slice(0, slash) : p;
  const family = isIP(addr);
  if (family !== 0) {
    const bits = slash >= 0 ? Number(p.slice(slash + 1)) : family === 4 ? 32 : 128;
    if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128) || (slash >= 0 && !/^\d+$/.test(p.slice(slash + 1)))) {
      throw new Error(`address pattern ${JSON.stringify(pattern)}: not a valid CIDR range`);
    }
    const list = new BlockList();
    list.addSubnet(addr, bits, family === 4 ? 'ipv4' : 'ipv6');
    return (host, ip) => ip !== 0 && list.check(host, ip === 4 ? 'ipv4' : 'ipv6');
  }
  if (slash >= 0) throw new Error(`address pattern ${JSON.stringify(pattern)}: a range needs an IP address before the "/"`);
  const wildcard = p.startsWith('*.');
  const name = wildcard ? p.slice(2) : p;
  if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(name) || name.length > 253) {
    throw new Error(`address pattern ${JSON.stringify(pattern)}: expected a CIDR range, an IP address, a host name or *.domain`);
  }
  return wildcard ? (host, ip) => ip === 0 && host.endsWith(`.${name}`) : (host, ip) => ip === 0 && host === name;
}

/** Ranges that are never on the public internet (RFC 1918, 6598, 3927, 4193, 4291 and friends). */
const INTERNAL = new BlockList();
for (const [a, bits] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15]] as const) {
  INTERNAL.addSubnet(a, bits, 'ipv4');
}
for (const [a, bits] of [['::', 127], ['fc00::', 7], ['fe80::', 10]] as const) INTERNAL.addSubnet(a, bits, 'ipv6');
/** Names that only mean something inside a network. */
const INTERNAL_SUFFIXES = ['.local', '.localdomain', '.internal', '.intranet', '.lan', '.home.arpa', '.corp', '.localhost'];

/** The host of a URL as matched: lower case, no brackets, an IPv4-mapped IPv6 address as IPv4. */
function hostOf(url: URL): { host: string; ip: 4 | 6 | 0 } {
  let host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  // WHATWG URL writes ::ffff:10.0.0.1 as ::ffff:a00:1; the IPv4 rules must still see it.
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    host = `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return { host, ip: isIP(host) as 4 | 6 | 0 };
}

/** Whether the host is one only a network's insiders reach: a private, loopback or link-local address, or a local name. */
export function isInternalHost(host: string, ip: 4 | 6 | 0): boolean {
  if (ip !== 0) return INTERNAL.check(host, ip === 4 ? 'ipv4' : 'ipv6');
  // A single label (`deckhand`) is resolved through a network's own search domains.
  return !host.includes('.') || host === 'localhost' || INTERNAL_SUFFIXES.some((s) => host.endsWith(s));
}

const compiled = new WeakMap<AddressRules, { sites: [string, Matcher[]][]; cloud: Matcher[] }>();
function compile(rules: AddressRules) {
  let c = compiled.get(rules);
  if (!c) {
    c = { sites: Object.entries(rules.sites).map(([site, ps]) => [site, ps.map(addressMatcher)]), cloud: rules.cloud.map(addressMatcher) };
    compiled.set(rules, c);
  }
  return c;
}

/**
 * Who fetches `url`: the agent of the first site whose pattern matches its host; else the cloud
 * when a cloud pattern matches or the host is public; else nobody (an internal address no site
 * is named for). The URL must be http(s); `what` names it in the refusal.
 */
export function reachOf(url: string, rules: AddressRules, what = 'URL'): Reach {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { via: 'refused', reason: `${what} ${url.slice(0, 200)} is not a URL` };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { via: 'refused', reason: `${what} ${u.protocol} URLs are not fetched (http or https)` };
  const { host, ip } = hostOf(u);
  const c = compile(rules);
  for (const [site, matchers] of c.sites) if (matchers.some((m) => m(host, ip))) return { via: 'agent', site };
  if (c.cloud.some((m) => m(host, ip))) return { via: 'cloud' };
  if (!isInternalHost(host, ip)) return { via: 'cloud' };
  return {
    via: 'refused',
    reason: `${what} ${u.protocol}//${u.host}/… is a site-internal address and no site is named for it: Slipway fetches it through that site's agent once SLIPWAY_SITE_ADDRESSES maps it to the site (e.g. {"<site>": ["${ip ? u.hostname.replace(/^\[|\]$/g, '') : host}"]})`,
  };
}

/** Parses `SLIPWAY_SITE_ADDRESSES`: JSON, site name → list of patterns; errors name the setting. */
export function siteAddressesFromEnv(raw: string | undefined): Record<string, string[]> {
  if (!raw || !raw.trim()) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error('SLIPWAY_SITE_ADDRESSES must be JSON: {"<site>": ["10.1.0.0/16", "*.site1.example.com", "deckhand"], ...}');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('SLIPWAY_SITE_ADDRESSES must be a JSON object of site name → list of address patterns');
  const out: Record<string, string[]> = {};
  for (const [site, ps] of Object.entries(parsed as Record<string, unknown>)) {
    if (!Array.isArray(ps) || !ps.every((p) => typeof p === 'string')) throw new Error(`SLIPWAY_SITE_ADDRESSES: ${JSON.stringify(site)} must be a list of address patterns`);
    for (const p of ps as string[]) {
      try {
        addressMatcher(p);
      } catch (err) {
        throw new Error(`SLIPWAY_SITE_ADDRESSES: ${(err as Error).message}`);
      }
    }
    out[site] = ps as string[];
  }
  return out;
}

/** Parses a comma-separated list of patterns (`SLIPWAY_CLOUD_FETCH_ADDRESSES`). */
export function patternsFromEnv(name: string, raw: string): string[] {
  const ps = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of ps) {
    try {
      addressMatcher(p);
    } catch (err) {
      throw new Error(`${name}: ${(err as Error).message}`);
    }
  }
  return ps;
}
