import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../layers/core/config.ts';
import { addressMatcher, reachOf } from '../../layers/core/util/addresses.ts';

describe('which side of the network a URL is on (SLIPWAY_SITE_ADDRESSES)', () => {
  const rules = { sites: { site1: ['10.1.0.0/16', '*.site1.corp', 'deckhand', 'fd00:1::/64'], site2: ['192.168.7.9'] }, cloud: [] };

  it("sends a site's addresses to its agent, public ones to the cloud, and refuses other internal ones", () => {
    expect(reachOf('http://10.1.2.3:9000/design.yaml', rules)).toEqual({ via: 'agent', site: 'site1' });
    expect(reachOf('https://deckhand.api.site1.corp/x', rules)).toEqual({ via: 'agent', site: 'site1' });
    expect(reachOf('http://DECKHAND:9000/x', rules)).toEqual({ via: 'agent', site: 'site1' });
    expect(reachOf('http://[fd00:1::5]/x', rules)).toEqual({ via: 'agent', site: 'site1' });
    expect(reachOf('http://192.168.7.9/x', rules)).toEqual({ via: 'agent', site: 'site2' });
    expect(reachOf('https://example.com/design.yaml', rules)).toEqual({ via: 'cloud' });
    expect(reachOf('https://93.184.216.34/x', rules)).toEqual({ via: 'cloud' });
    for (const internal of ['http://10.2.0.1/x', 'http://127.0.0.1:9001/2018-06-01/runtime', 'http://169.254.169.254/latest', 'http://[::1]/x', 'http://[::ffff:10.9.9.9]/x', 'http://repo/x', 'http://repo.site3.internal/x', 'http://0x7f.1/x', 'http://172.20.0.1/x']) {
      const r = reachOf(internal, rules);
      expect(r.via, internal).toBe('refused');
      expect((r as { reason: string }).reason).toMatch(/site-internal address and no site is named for it.*SLIPWAY_SITE_ADDRESSES/);
    }
    expect(reachOf('ftp://example.com/x', rules).via).toBe('refused');
  });

  it('lets the cloud fetch addresses listed in SLIPWAY_CLOUD_FETCH_ADDRESSES; a site rule wins over it', () => {
    const r = { sites: { s: ['127.0.0.2'] }, cloud: ['127.0.0.0/8'] };
    expect(reachOf('http://127.0.0.1:8080/x', r)).toEqual({ via: 'cloud' });
    expect(reachOf('http://127.0.0.2:8080/x', r)).toEqual({ via: 'agent', site: 's' });
  });

  it('reads the settings: loopback is the local stack\'s own off Lambda, nothing is on Lambda; bad patterns are named', () => {
    expect(configFromEnv({}).siteAddresses).toEqual({ sites: {}, cloud: ['127.0.0.0/8', '::1', 'localhost'] });
    expect(configFromEnv({ AWS_LAMBDA_FUNCTION_NAME: 'f' }).siteAddresses.cloud).toEqual([]);
    expect(configFromEnv({ SLIPWAY_SITE_ADDRESSES: '{"a": ["10.0.0.0/8"]}' }).siteAddresses.sites).toEqual({ a: ['10.0.0.0/8'] });
    expect(() => configFromEnv({ SLIPWAY_SITE_ADDRESSES: '{"a": ["10.0.0.0/33"]}' })).toThrow(/SLIPWAY_SITE_ADDRESSES: address pattern "10.0.0.0\/33"/);
    expect(() => configFromEnv({ SLIPWAY_SITE_ADDRESSES: '["x"]' })).toThrow(/JSON object/);
    expect(() => configFromEnv({ SLIPWAY_CLOUD_FETCH_ADDRESSES: 'http://x/' })).toThrow(/SLIPWAY_CLOUD_FETCH_ADDRESSES/);
    expect(() => addressMatcher('*.')).toThrow();
  });
});
