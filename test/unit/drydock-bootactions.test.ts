import * as crypto from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  actionTemplateContext,
  base64DecodeLikePython,
  cloudConfigPackages,
  encodeUlid,
  executePipeline,
  hashNodeKey,
  InvalidAssetError,
  InvalidAssetLocationError,
  InvalidPackageListFormatError,
  mergePackageLists,
  monotonicUlid,
  newNodeKey,
  nodeKeyHex,
  nodeTemplateContext,
  parseNodeKeyHex,
  parseUlid,
  PipelineFailureError,
  renderAsset,
  renderAssets,
  renderTemplate,
  type TemplateContext,
  toBytes,
  ulid,
  ulidTime,
  UnknownPipelineSegmentError,
  verifyNodeKey,
} from '../../layers/core/drydock/bootactions/index.ts';

// A spy that still compares: lets the key tests see that timingSafeEqual does the comparison.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

const KEY = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
const ACTION_ID = '01ARYZ6S41TSV4RRFFQ69G5FAV';

const NETWORKS: Record<string, { cidr: string; dns?: { domain?: string } }> = {
  mgmt: { cidr: '172.16.1.0/24', dns: { domain: 'mgmt.sitename.example.com' } },
  private: { cidr: '172.16.2.0/24', dns: { domain: 'priv.sitename.example.com' } },
  pxe: { cidr: '172.16.0.0/24', dns: { domain: 'admin.sitename.example.com' } },
  storage: { cidr: '10.0.0.0/16' },
};

/** compute01 of upstream's deckhand_fullsite.yaml, plus a storage network without a domain. */
function context(primary_network: string | null = 'mgmt'): TemplateContext {
  return {
    node: nodeTemplateContext(
      {
        name: 'compute01',
        tags: ['test', 'gpu'],
        labels: { foo: 'bar', rack: 'r2' },
        primary_network,
        addresses: [
          { network: 'pxe', address: 'dhcp' },
          { network: 'mgmt', address: '172.16.1.21' },
          { network: 'private', address: '172.16.2.21' },
          { network: 'storage', address: '10.0.3.21' },
        ],
        data: {
          interfaces: {
            bond0: { sriov: { vf_count: 2, trustedmode: false } },
            pxe: {},
            ens9: { sriov: {} },
            removed: null,
          },
        },
      },
      (name) => NETWORKS[name],
    ),
    action: actionTemplateContext({
      actionId: ACTION_ID,
      nodeKey: KEY,
      reportUrl: 'http://slipway.example.com/api/v1.0/bootactions/',
      designRef: 'deckhand+http://deckhand/api/v1.0/revisions/7/rendered-documents',
    }),
  };
}

describe('ULID', () => {
  it('encodes 48 bits of time and 80 random bits as 26 Crockford base32 characters', () => {
    expect(encodeUlid(1469918176385, new Uint8Array(10))).toBe('01ARYZ6S410000000000000000');
    expect(encodeUlid(2 ** 48 - 1, new Uint8Array(10).fill(0xff))).toBe('7ZZZZZZZZZZZZZZZZZZZZZZZZZ');
    expect(encodeUlid(0, Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))).toBe('00000000000000000000000001');
    expect(() => encodeUlid(2 ** 48, new Uint8Array(10))).toThrow(RangeError);
    expect(() => encodeUlid(0, new Uint8Array(9))).toThrow(RangeError);
  });

  it('makes ids of the right shape that carry the current time', () => {
    const before = Date.now();
    const id = ulid();
    expect(id).toMatch(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/);
    expect(ulidTime(id)).toBeGreaterThanOrEqual(before);
    expect(ulidTime(id)).toBeLessThanOrEqual(Date.now());
    expect(ulidTime('01ARYZ6S41TSV4RRFFQ69G5FAV')).toBe(1469918176385);
  });

  it('increments the randomness inside one millisecond, so ids strictly increase', () => {
    const next = monotonicUlid({ now: () => 1469918176385, fill: (b) => b.fill(0).fill(7, 9) });
    const ids = Array.from({ length: 40 }, () => next());
    expect(ids[0]).toBe('01ARYZ6S410000000000000007');
    expect(ids[1]).toBe('01ARYZ6S410000000000000008');
    expect(ids[24]).toBe('01ARYZ6S41000000000000000Z');
    expect(ids[25]).toBe('01ARYZ6S410000000000000010');
    for (let i = 1; i < ids.length; i++) expect((ids[i] as string) > (ids[i - 1] as string)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('keeps increasing when the clock steps back, and starts afresh in a later millisecond', () => {
    const times = [2000, 1000, 3000];
    let fills = 0;
    const next = monotonicUlid({ now: () => times.shift() as number, fill: (b) => void b.fill(++fills) });
    const [a, b, c] = [next(), next(), next()] as [string, string, string];
    expect(b > a && c > b).toBe(true);
    expect(ulidTime(b)).toBe(2000);
    expect(ulidTime(c)).toBe(3000);
    expect(fills).toBe(2);
  });

  it('throws instead of wrapping when the randomness overflows inside one millisecond', () => {
    const next = monotonicUlid({ now: () => 5, fill: (b) => void b.fill(0xff) });
    expect(next()).toBe(encodeUlid(5, new Uint8Array(10).fill(0xff)));
    expect(() => next()).toThrow(/overflow/);
  });

  it('parses ids case-insensitively and refuses what is not a ULID', () => {
    expect(parseUlid('01aryz6s41tsv4rrffq69g5fav')).toBe(ACTION_ID);
    for (const bad of ['', ACTION_ID.slice(1), `${ACTION_ID}0`, '81ARYZ6S41TSV4RRFFQ69G5FAV', '01ARYZ6S41TSV4RRFFQ69G5FAI', '01ARYZ6S41TSV4RRFFQ69G5FAL', '01ARYZ6S41TSV4RRFFQ69G5FAO', '01ARYZ6S41TSV4RRFFQ69G5FAU', 'not-a-ulid']) {
      expect(parseUlid(bad), bad).toBeUndefined();
    }
    expect(() => ulidTime('nope')).toThrow(RangeError);
  });
});

describe('node keys', () => {
  const spy = vi.mocked(crypto.timingSafeEqual);

  it('are 32 random bytes, shown as 64 lower-case hex digits', () => {
    const a = newNodeKey();
    expect(a).toHaveLength(32);
    expect(newNodeKey().equals(a)).toBe(false);
    expect(nodeKeyHex(KEY)).toBe('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff');
    expect(parseNodeKeyHex(nodeKeyHex(KEY).toUpperCase())?.equals(KEY)).toBe(true);
    expect(parseNodeKeyHex('zz'.repeat(32))).toBeUndefined();
  });

  it('are stored as the SHA-256 hex of the raw bytes', () => {
    expect(hashNodeKey(KEY)).toBe(crypto.createHash('sha256').update(KEY).digest('hex'));
    expect(hashNodeKey(KEY)).toMatch(/^[0-9a-f]{64}$/);
    expect(() => hashNodeKey(KEY.subarray(1))).toThrow(RangeError);
  });

  it('verify a presented hex key in either case, with a constant-time comparison', () => {
    const stored = hashNodeKey(KEY);
    spy.mockClear();
    expect(verifyNodeKey(nodeKeyHex(KEY), stored)).toBe(true);
    expect(verifyNodeKey(nodeKeyHex(KEY).toUpperCase(), stored)).toBe(true);
    expect(spy).toHaveBeenCalledTimes(2);
    for (const [x, y] of spy.mock.calls) expect([(x as Buffer).length, (y as Buffer).length]).toEqual([32, 32]);
  });

  it('treat a wrong, malformed or missing key as a mismatch without throwing', () => {
    const stored = hashNodeKey(KEY);
    const other = nodeKeyHex(newNodeKey());
    const hex = nodeKeyHex(KEY);
    spy.mockClear();
    const presented = [other, hex.slice(1), `${hex}0`, `${hex.slice(0, 62)}zz`, '', ' ', `${hex} `, undefined, null, hex.slice(0, 32)];
    for (const p of presented) expect(verifyNodeKey(p, stored), String(p)).toBe(false);
    // The digests are compared even for malformed input (no early exit on the input's shape).
    expect(spy).toHaveBeenCalledTimes(presented.length);
    expect(verifyNodeKey(hex, 'not-a-hash')).toBe(false);
    expect(verifyNodeKey(hex, stored.slice(2))).toBe(false);
    expect(verifyNodeKey(hex, stored.toUpperCase())).toBe(true);
  });
});

describe('pipeline segments', () => {
  const ctx = context();

  it('base64_decode takes bytes or a string, skips line breaks and returns bytes', () => {
    expect(executePipeline(enc('aGVs\nbG8='), ['base64_decode'], ctx)).toEqual(enc('hello'));
    expect(executePipeline('aGVsbG8=', ['base64_decode'], ctx)).toEqual(enc('hello'));
    expect(executePipeline(enc(''), ['base64_decode'], ctx)).toEqual(new Uint8Array());
  });

  it('base64_decode fails on bad padding, a dangling character or non-ASCII text, as Python does', () => {
    expect(() => executePipeline('aGVsbG8', ['base64_decode'], ctx)).toThrow(/base64_decode.*incorrect padding/);
    expect(() => executePipeline('aGVsb', ['base64_decode'], ctx)).toThrow(/1 more than a multiple of 4/);
    expect(() => executePipeline('aGVsbG8=é', ['base64_decode'], ctx)).toThrow(PipelineFailureError);
    // Python stops at a complete padding and skips a '=' that cannot be padding.
    expect(base64DecodeLikePython('YQ==YWJj')).toEqual(enc('a'));
    expect(base64DecodeLikePython('Y=Q==')).toEqual(enc('a'));
    expect(base64DecodeLikePython('YWJj=')).toEqual(enc('abc'));
  });

  it('base64_encode turns bytes into base64 bytes and refuses a string', () => {
    expect(dec(executePipeline(enc('hello'), ['base64_encode'], ctx) as Uint8Array)).toBe('aGVsbG8=');
    expect(() => executePipeline('hello', ['base64_encode'], ctx)).toThrow(/base64_encode needs bytes but got a string \(add utf8_encode before it\)/);
  });

  it('utf8_decode turns bytes into a string and refuses text or invalid UTF-8', () => {
    expect(executePipeline(enc('héllo'), ['utf8_decode'], ctx)).toBe('héllo');
    expect(executePipeline(Uint8Array.from([0xef, 0xbb, 0xbf, 0x41]), ['utf8_decode'], ctx)).toBe('\ufeffA');
    expect(() => executePipeline('text', ['utf8_decode'], ctx)).toThrow(/utf8_decode needs bytes/);
    expect(() => executePipeline(Uint8Array.from([0xff, 0xfe]), ['utf8_decode'], ctx)).toThrow(PipelineFailureError);
  });

  it('utf8_encode turns a string into bytes and refuses bytes', () => {
    expect(executePipeline('héllo', ['utf8_encode'], ctx)).toEqual(enc('héllo'));
    expect(() => executePipeline(enc('x'), ['utf8_encode'], ctx)).toThrow(/utf8_encode needs a string but got bytes/);
  });

  it('template renders a string and refuses bytes, as jinja2.Template(bytes) does', () => {
    expect(executePipeline('{{ node.hostname }}', ['template'], ctx)).toBe('compute01');
    expect(() => executePipeline(enc('{{ node.hostname }}'), ['template'], ctx)).toThrow(/template needs a string but got bytes \(add utf8_decode before it\)/);
    expect(() => executePipeline('{% if %}', ['template'], ctx)).toThrow(/segment template \(#1\)/);
  });

  it('runs segments left to right, as in upstream\'s examples', () => {
    // upstream deckhand_fullsite.yaml, asset /var/tmp/hello.sh
    const hello = 'IyEvYmluL2Jhc2gKCmVjaG8gJ0hlbGxvIFdvcmxkISAtZnJvbSB7eyBub2RlLmhvc3RuYW1lIH19\nJwo=';
    expect(executePipeline(enc(hello), ['base64_decode', 'utf8_decode', 'template'], ctx)).toBe("#!/bin/bash\n\necho 'Hello World! -from compute01'");
    const designRef = 'e3sgYWN0aW9uLmRlc2lnbl9yZWYgfX0K';
    expect(executePipeline(enc(designRef), ['base64_decode', 'utf8_decode', 'template'], ctx)).toBe(ctx.action.design_ref);
    const roundTrip = executePipeline(enc('x\u0000y'), ['base64_encode', 'base64_decode', 'utf8_decode', 'utf8_encode'], ctx);
    expect(roundTrip).toEqual(enc('x\u0000y'));
    const encoded = executePipeline(enc(b64('{{ action.action_id }}')), ['base64_decode', 'utf8_decode', 'template', 'utf8_encode', 'base64_encode'], ctx);
    expect(dec(encoded as Uint8Array)).toBe(b64(ACTION_ID));
  });

  it('leaves the value alone with no segments and UTF-8 encodes a final string', () => {
    const bytes = enc('raw');
    expect(executePipeline(bytes, undefined, ctx)).toBe(bytes);
    expect(executePipeline(bytes, [], ctx)).toBe(bytes);
    expect(toBytes('é')).toEqual(Uint8Array.from([0xc3, 0xa9]));
    expect(toBytes(bytes)).toBe(bytes);
  });

  it('rejects an unknown segment before running any', () => {
    // Were 'template' run first, it would fail on bytes; the unknown segment is reported instead.
    expect(() => executePipeline(enc('x'), ['template', 'gzip'], ctx)).toThrow(UnknownPipelineSegmentError);
    expect(() => executePipeline(enc('x'), ['gzip'], ctx)).toThrow('Bootaction pipeline segment gzip unknown.');
    expect(() => executePipeline('http://x', ['base64_encode'], ctx, ['template'])).toThrow(/base64_encode not allowed here \(allowed: template\)/);
  });

  it('wraps a failure with the segment and its position, keeping the cause', () => {
    try {
      executePipeline(enc('x'), ['utf8_decode', 'utf8_decode'], ctx);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PipelineFailureError);
      expect((err as Error).message).toMatch(/^Error when running bootaction pipeline segment utf8_decode \(#2\): utf8_decode needs bytes/);
      expect((err as Error).cause).toBeInstanceOf(Error);
    }
  });
});

describe('template context', () => {
  it('holds exactly the documented fields, built as upstream builds them', () => {
    const ctx = context();
    const mgmt = { ip: '172.16.1.21', cidr: '172.16.1.0/24', dns_suffix: 'mgmt.sitename.example.com' };
    expect(ctx).toEqual({
      node: {
        hostname: 'compute01',
        domain: 'mgmt.sitename.example.com',
        tags: ['test', 'gpu'],
        labels: { foo: 'bar', rack: 'r2' },
        network: {
          mgmt,
          default: mgmt,
          private: { ip: '172.16.2.21', cidr: '172.16.2.0/24', dns_suffix: 'priv.sitename.example.com' },
          storage: { ip: '10.0.3.21', cidr: '10.0.0.0/16', dns_suffix: 'local' },
        },
        interfaces: { bond0: { sriov: true, vf_count: 2, trustedmode: false }, pxe: { sriov: false }, ens9: { sriov: true, vf_count: 0, trustedmode: false } },
      },
      action: {
        action_id: ACTION_ID,
        action_key: '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff',
        report_url: 'http://slipway.example.com/api/v1.0/bootactions/',
        design_ref: 'deckhand+http://deckhand/api/v1.0/revisions/7/rendered-documents',
      },
    });
    expect(ctx.node.network).not.toHaveProperty('pxe'); // DHCP-addressed: no static entry
  });

  it('falls back to domain local without a primary network, and has no default network then', () => {
    const ctx = context(null);
    expect(ctx.node.domain).toBe('local');
    expect(ctx.node.network).not.toHaveProperty('default');
    expect(context('storage').node.domain).toBe('local');
  });

  it('refuses an address on a network the design does not have', () => {
    const node = { name: 'n', tags: [], labels: {}, primary_network: null, addresses: [{ network: 'nope', address: '1.2.3.4' }], data: {} };
    expect(() => nodeTemplateContext(node, () => undefined)).toThrow(/unknown network nope/);
  });

  it('renders every documented variable', () => {
    const template = [
      'host={{ node.hostname }} fqdn={{ node.hostname }}.{{ node.domain }}',
      'tags={% for t in node.tags %}{{ t }}{% if not loop.last %},{% endif %}{% endfor %}',
      'labels={% for k, v in node.labels.items() %}{{ k }}={{ v }};{% endfor %}',
      'mgmt={{ node.network.mgmt.ip }} {{ node.network.mgmt.cidr }} {{ node.network.mgmt.dns_suffix }}',
      'default={{ node.network.default.ip }}',
      'bond0={{ node.interfaces.bond0.sriov }}/{{ node.interfaces.bond0.vf_count }}/{{ node.interfaces.bond0.trustedmode }} pxe={{ node.interfaces.pxe.sriov }}',
      'curl -X POST -H "X-Bootaction-Key: {{ action.action_key }}" {{ action.report_url }}{{ action.action_id }}/',
      'ref={{ action.design_ref | urlencode }}',
      '',
    ].join('\n');
    expect(renderTemplate(template, context())).toBe(
      [
        'host=compute01 fqdn=compute01.mgmt.sitename.example.com',
        'tags=test,gpu',
        'labels=foo=bar;rack=r2;',
        'mgmt=172.16.1.21 172.16.1.0/24 mgmt.sitename.example.com',
        'default=172.16.1.21',
        'bond0=True/2/False pxe=False',
        `curl -X POST -H "X-Bootaction-Key: ${nodeKeyHex(KEY)}" http://slipway.example.com/api/v1.0/bootactions/${ACTION_ID}/`,
        'ref=deckhand%2Bhttp%3A//deckhand/api/v1.0/revisions/7/rendered-documents',
      ].join('\n'),
    );
  });
});

describe('templates behave like Jinja2 defaults', () => {
  const ctx = context();
  // Expected values were produced by jinja2 3.1.6: jinja2.Template(src).render(ctx).
  const cases: [string, string][] = [
    ['{{ missing }}|{{ node.labels.nope }}', '|'],
    ['{{ missing | default("dflt") }}', 'dflt'],
    ['{% if missing is defined %}d{% else %}u{% endif %}', 'u'],
    ['{{ node.tags }}', "['test', 'gpu']"],
    ['{{ ["it\'s", "a\\tb"] }}', '["it\'s", \'a\\tb\']'],
    ['{{ node.labels }}', "{'foo': 'bar', 'rack': 'r2'}"],
    ['{{ node.interfaces.bond0 }}', "{'sriov': True, 'vf_count': 2, 'trustedmode': False}"],
    ['{{ None }}|{{ True }}|{{ [None, 1.5] | join(" ") }}', 'None|True|None 1.5'],
    ['{{ node.tags | string }}', "['test', 'gpu']"],
    ['{% for k in node.labels %}{{ k }};{% endfor %}', 'foo;rack;'],
    ['{{ node.labels.get("nope", "x") }}/{{ node.labels.keys() | list }}', "x/['foo', 'rack']"],
    ['{{ node.tags[1:] }}', "['gpu']"],
    ['{{ "<a href=\'x\'>&amp;</a>" }}', "<a href='x'>&amp;</a>"],
    ['{{ "a b/c?d=é!" | urlencode }}', 'a%20b/c%3Fd%3D%C3%A9%21'],
    ['{{ {"a b": "c&d", "e": 1} | urlencode }}', 'a+b=c%26d&e=1'],
    ['{{ [["k", "v w"]] | urlencode }}', 'k=v+w'],
    ['line1\r\nline2\rline3\n', 'line1\nline2\nline3'],
    ['x\n\n', 'x\n'],
    ['{{ node.hostname | upper }}-{{ node.tags | length }}', 'COMPUTE01-2'],
    ['{% set n = None %}[{{ n.attr }}]', '[]'],
    ['{%- for t in node.tags %}\n{{ t }}\n{%- endfor %}', '\ntest\ngpu'],
  ];
  for (const [src, expected] of cases) {
    it(`renders ${JSON.stringify(src)}`, () => expect(renderTemplate(src, ctx)).toBe(expected));
  }

  it('fails on an attribute of an undefined value, a call of an undefined name and bad syntax', () => {
    expect(() => renderTemplate('{{ node.network.nope.ip }}', ctx)).toThrow(/cannot look up "ip" on an undefined value/);
    expect(() => renderTemplate('{{ missing() }}', ctx)).toThrow(/Unable to call `missing`/);
    expect(() => renderTemplate('{{ 1 + }}', ctx)).toThrow(/unexpected token/);
  });

  it('has no loader: include and extends fail', () => {
    expect(() => renderTemplate('{% include "/etc/passwd" %}', ctx)).toThrow(/template not found/);
    expect(() => renderTemplate('{% extends "base.html" %}', ctx)).toThrow(/template not found/);
  });

  it('refuses constructor and dunder lookups, so a template cannot reach Function', () => {
    const probe = globalThis as { __slipwayPwned?: number };
    for (const src of ['{{ range.constructor("globalThis.__slipwayPwned = 1")() }}', '{{ node["constructor"] }}', '{{ node.__proto__ }}', '{{ cycler.prototype }}']) {
      expect(() => renderTemplate(src, ctx), src).toThrow(/is not allowed in boot-action templates/);
    }
    expect(probe.__slipwayPwned).toBeUndefined();
  });

  it('renders on a copy: Python-style mutators cannot change the caller\'s context', () => {
    const before = structuredClone(ctx);
    const src = '{{ node.labels.update({"foo": "changed"}) }}{% set _ = node.tags.append("x") %}{{ node.labels.foo }}{{ node.tags | length }}';
    expect(renderTemplate(src, ctx)).toBe('Nonechanged3');
    expect(ctx).toEqual(before);
  });
});

describe('renderAsset', () => {
  const ctx = context();
  const fetchLocation = vi.fn(async (url: string) => enc(`fetched ${url} {{ node.hostname }}`));

  it('renders a file from inline data through its pipeline, 0600 by default', async () => {
    const r = await renderAsset({ type: 'file', path: '/etc/motd', data: 'Hi {{ node.hostname }}\n', data_pipeline: ['utf8_decode', 'template'] }, ctx);
    expect(r).toEqual({ type: 'file', path: '/etc/motd', mode: 0o600, data: enc('Hi compute01') });
  });

  it('keeps inline data as UTF-8 bytes without a pipeline and reads permissions as octal', async () => {
    const unit = await renderAsset({ type: 'unit', path: '/lib/systemd/system/hello.service', permissions: '444', data: '[Unit]\nDescription={{ x }}\n' }, ctx);
    expect(unit).toEqual({ type: 'unit', path: '/lib/systemd/system/hello.service', mode: 0o444, data: enc('[Unit]\nDescription={{ x }}\n') });
    for (const [p, mode] of [['555', 0o555], ['750', 0o750], ['000', 0o600]] as const) {
      expect((await renderAsset({ type: 'file', path: '/x', permissions: p, data: '' }, ctx)) as { mode: number }, p).toMatchObject({ mode });
    }
    for (const p of ['999', '0644', '64', 'rw-']) {
      await expect(renderAsset({ type: 'file', path: '/x', permissions: p, data: '' }, ctx), p).rejects.toThrow(InvalidAssetError);
    }
    await expect(renderAsset({ type: 'file', path: 'relative', data: '' }, ctx)).rejects.toThrow(InvalidAssetError);
    await expect(renderAsset({ type: 'unit', path: '/x' }, ctx)).rejects.toThrow(/neither string data nor a location/);
  });

  it('renders the location with its pipeline, fetches it, then runs the data pipeline (location wins over data)', async () => {
    fetchLocation.mockClear();
    const r = await renderAsset(
      {
        type: 'file',
        path: '/opt/agent.sh',
        permissions: '755',
        data: 'ignored',
        location: 'http://repo/{{ node.hostname }}/agent.sh',
        location_pipeline: ['template'],
        data_pipeline: ['utf8_decode', 'template'],
      },
      ctx,
      { fetchLocation },
    );
    expect(fetchLocation).toHaveBeenCalledWith('http://repo/compute01/agent.sh');
    expect(r).toEqual({ type: 'file', path: '/opt/agent.sh', mode: 0o755, data: enc('fetched http://repo/compute01/agent.sh compute01') });
  });

  it('fetches the location verbatim without a location pipeline', async () => {
    fetchLocation.mockClear();
    await renderAsset({ type: 'file', path: '/x', location: 'http://repo/{{ raw }}' }, ctx, { fetchLocation });
    expect(fetchLocation).toHaveBeenCalledWith('http://repo/{{ raw }}');
  });

  it('reports an unreachable location without its query (it may carry the key)', async () => {
    const failing = async () => {
      throw new Error('connect ECONNREFUSED');
    };
    const asset = { type: 'file' as const, path: '/x', location: 'http://repo/a?key={{ action.action_key }}', location_pipeline: ['template' as const] };
    const err = (await renderAsset(asset, ctx, { fetchLocation: failing }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(InvalidAssetLocationError);
    expect(err.message).toBe('Unable to resolve asset reference http://repo/a: connect ECONNREFUSED');
    expect(err.message).not.toContain(nodeKeyHex(KEY));
    await expect(renderAsset(asset, ctx)).rejects.toThrow(/no location fetcher/);
  });

  it('only allows template in the location pipeline', async () => {
    await expect(renderAsset({ type: 'file', path: '/x', location: 'aHR0cDovL3g=', location_pipeline: ['base64_decode'] }, ctx, { fetchLocation })).rejects.toThrow(
      UnknownPipelineSegmentError,
    );
  });

  it('takes a pkg_list from its inline mapping, without running pipelines', async () => {
    const r = await renderAsset({ type: 'pkg_list', data: { docker: '17.03', ceph: null }, data_pipeline: ['template'] }, ctx);
    expect(r).toEqual({ type: 'pkg_list', packages: { docker: '17.03', ceph: null } });
  });

  it('parses a fetched pkg_list as YAML or JSON, and no data pipeline touches it', async () => {
    const yamlBody = async () => enc('docker: "17.03"\nceph:\nvim: ~\n');
    const r = await renderAsset({ type: 'pkg_list', location: 'http://repo/pkgs.yaml', data_pipeline: ['base64_decode'] }, ctx, { fetchLocation: yamlBody });
    expect(r).toEqual({ type: 'pkg_list', packages: { docker: '17.03', ceph: null, vim: null } });
    const jsonBody = async () => enc('{"htop": null, "curl": "7.58.0-2ubuntu3"}');
    expect(await renderAsset({ type: 'pkg_list', location: 'http://repo/pkgs.json' }, ctx, { fetchLocation: jsonBody })).toEqual({
      type: 'pkg_list',
      packages: { htop: null, curl: '7.58.0-2ubuntu3' },
    });
  });

  it('refuses a package list that is not a mapping of strings', async () => {
    const body = (text: string) => ({ fetchLocation: async () => enc(text) });
    const asset = { type: 'pkg_list' as const, location: 'http://repo/p' };
    await expect(renderAsset(asset, ctx, body('- docker\n- ceph\n'))).rejects.toThrow(/top-level mapping/);
    await expect(renderAsset(asset, ctx, body('docker: 17.03\n'))).rejects.toThrow(/version of docker is number \(quote it\)/);
    await expect(renderAsset(asset, ctx, body('a: [unclosed'))).rejects.toThrow(/Invalid YAML in package list/);
    await expect(renderAsset(asset, ctx, body('plain text'))).rejects.toThrow(InvalidPackageListFormatError);
    await expect(renderAsset({ type: 'pkg_list', data: 'docker' }, ctx)).rejects.toThrow(InvalidPackageListFormatError);
  });

  it('renders a boot action\'s assets in order, optionally one type only', async () => {
    const assets = [
      { type: 'unit' as const, path: '/u.service', data: 'u' },
      { type: 'pkg_list' as const, data: { a: '1' } },
      { type: 'file' as const, path: '/f', data: 'f' },
    ];
    expect((await renderAssets(assets, ctx)).map((r) => r.type)).toEqual(['unit', 'pkg_list', 'file']);
    // A broken asset of another type does not matter when rendering one type (upstream's type_filter).
    const withBroken = [...assets, { type: 'file' as const, path: '/broken', data: 'x', data_pipeline: ['base64_encode', 'template'] }];
    expect(await renderAssets(withBroken, ctx, { only: 'unit' })).toEqual([{ type: 'unit', path: '/u.service', mode: 0o600, data: enc('u') }]);
    await expect(renderAssets(withBroken, ctx)).rejects.toThrow(PipelineFailureError);
  });

  it('merges package lists in order (a later version wins) into cloud-config entries', () => {
    const merged = mergePackageLists([
      { type: 'pkg_list', packages: { docker: '17.03', ceph: null } },
      { type: 'file', path: '/f', mode: 0o600, data: enc('') },
      { type: 'pkg_list', packages: { docker: '18.06', htop: '' } },
    ]);
    expect(merged).toEqual({ docker: '18.06', ceph: null, htop: '' });
    expect(cloudConfigPackages(merged)).toEqual([['docker', '18.06'], 'ceph', 'htop']);
  });
});
