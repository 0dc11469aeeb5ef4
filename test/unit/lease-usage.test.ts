import { describe, expect, it } from 'vitest';
import { configFromEnv } from '../../layers/core/config.ts';
import { ForbiddenError, ValidationError } from '../../layers/core/errors.ts';
import { checkHostCap, checkLeaseDuration, endedEntries, hostCap, peakHosts, type UsageEntry } from '../../layers/core/leases/usage.ts';

/** Usage enforcement, pure parts: the settings, the duration filter and the peak computation. */
const t = (h: number) => new Date(Date.UTC(2030, 0, 1, h));
const entry = (lease_id: string, from: number, to: number, hosts: number): UsageEntry => ({ lease_id, start: t(from).toISOString(), end: t(to).toISOString(), hosts });

describe('settings', () => {
  it('default to a one-week lease limit and no host cap, and take -1 for no limit', () => {
    expect(configFromEnv({}).enforcement).toEqual({
      maxLeaseDurationSeconds: 604800,
      maxLeaseDurationExemptProjects: [],
      maxHostsPerProject: -1,
      maxHostsExemptProjects: [],
    });
    const set = configFromEnv({
      SLIPWAY_MAX_LEASE_DURATION: '-1',
      SLIPWAY_MAX_LEASE_DURATION_EXEMPT_PROJECTS: ' ops, , research ',
      SLIPWAY_MAX_HOSTS_PER_PROJECT: '10',
      SLIPWAY_MAX_HOSTS_PER_PROJECT_EXEMPT_PROJECTS: 'ops',
    }).enforcement;
    expect(set).toEqual({ maxLeaseDurationSeconds: -1, maxLeaseDurationExemptProjects: ['ops', 'research'], maxHostsPerProject: 10, maxHostsExemptProjects: ['ops'] });
  });

  it('refuse zero, other negatives and non-integers', () => {
    for (const bad of ['0', '-2', '1.5', 'week']) {
      expect(() => configFromEnv({ SLIPWAY_MAX_LEASE_DURATION: bad }), bad).toThrow(/SLIPWAY_MAX_LEASE_DURATION must be a positive integer, or -1/);
      expect(() => configFromEnv({ SLIPWAY_MAX_HOSTS_PER_PROJECT: bad }), bad).toThrow(/SLIPWAY_MAX_HOSTS_PER_PROJECT/);
    }
  });
});

describe('checkLeaseDuration (MaxLeaseDurationFilter)', () => {
  const config = configFromEnv({ SLIPWAY_MAX_LEASE_DURATION: '86400', SLIPWAY_MAX_LEASE_DURATION_EXEMPT_PROJECTS: 'ops' });

  it('accepts a lease of exactly the limit and refuses one minute more with upstream\'s message: 403 on create, 400 on update', () => {
    expect(() => checkLeaseDuration(config, 'p', t(0), t(24), 'create')).not.toThrow();
    const create = (() => {
      try {
        checkLeaseDuration(config, 'p', t(0), new Date(t(24).getTime() + 60_000), 'create');
      } catch (e) {
        return e;
      }
    })();
    expect(create).toBeInstanceOf(ForbiddenError);
    expect((create as ForbiddenError).message).toBe('Lease duration of 86460 seconds must be less than or equal to the maximum lease duration of 86400 seconds.');
    expect((create as ForbiddenError).errorName).toBe('MAX_LEASE_DURATION_EXCEEDED');
    expect(() => checkLeaseDuration(config, 'p', t(0), t(48), 'update', { start: t(0), end: t(1) })).toThrow(ValidationError);
  });

  it('exempts the listed projects only (admins are not exempt as such)', () => {
    expect(() => checkLeaseDuration(config, 'ops', t(0), t(24 * 365), 'create')).not.toThrow();
    expect(() => checkLeaseDuration(config, 'admin', t(0), t(24 * 365), 'create')).toThrow(ForbiddenError);
  });

  it('lets an update through that does not lengthen a lease already over the limit', () => {
    expect(() => checkLeaseDuration(config, 'p', t(0), t(40), 'update', { start: t(0), end: t(48) })).not.toThrow();
    expect(() => checkLeaseDuration(config, 'p', t(0), t(49), 'update', { start: t(0), end: t(48) })).toThrow(ValidationError);
  });

  it('does nothing with -1', () => {
    expect(() => checkLeaseDuration(configFromEnv({ SLIPWAY_MAX_LEASE_DURATION: '-1' }), 'p', t(0), t(24 * 3650), 'create')).not.toThrow();
  });
});

describe('peakHosts', () => {
  const now = t(0);

  it('is the most hosts held at once by the other leases inside the window', () => {
    const entries = [entry('a', 1, 5, 2), entry('b', 3, 8, 3), entry('c', 6, 9, 1), entry('me', 0, 10, 50)];
    expect(peakHosts(entries, t(0), t(10), now, 'me')).toBe(5); // a and b overlap 3..5
    expect(peakHosts(entries, t(5), t(10), now, 'me')).toBe(4); // b and c overlap 6..8
    expect(peakHosts(entries, t(9), t(12), now, 'me')).toBe(0);
  });

  it('treats windows as half-open: back-to-back leases never add up', () => {
    expect(peakHosts([entry('a', 1, 3, 2), entry('b', 3, 5, 2)], t(0), t(10), now)).toBe(2);
    expect(peakHosts([entry('a', 1, 3, 2)], t(3), t(5), now)).toBe(0);
  });

  it('ignores the past', () => {
    expect(peakHosts([entry('a', 1, 3, 4)], t(0), t(10), t(3))).toBe(0);
    expect(peakHosts([entry('a', 1, 4, 4)], t(0), t(10), t(3))).toBe(4);
  });
});

describe('host cap', () => {
  it('applies unless disabled or exempt', () => {
    expect(hostCap(configFromEnv({}), 'p')).toBeUndefined();
    const config = configFromEnv({ SLIPWAY_MAX_HOSTS_PER_PROJECT: '4', SLIPWAY_MAX_HOSTS_PER_PROJECT_EXEMPT_PROJECTS: 'ops' });
    expect(hostCap(config, 'p')).toBe(4);
    expect(hostCap(config, 'ops')).toBeUndefined();
  });

  it('refuses what would go over it, saying how many hosts at once', () => {
    expect(() => checkHostCap(4, 'p', 2, 2, 'create')).not.toThrow();
    expect(() => checkHostCap(4, 'p', 3, 2, 'create')).toThrow(
      new ForbiddenError('Project p would hold 5 hosts at once (3 in this lease), more than the maximum of 4 hosts per project.', 'MAX_HOSTS_PER_PROJECT_EXCEEDED'),
    );
    expect(() => checkHostCap(4, 'p', 3, 2, 'update')).toThrow(ValidationError);
  });

  it('names a few ended entries to prune', () => {
    const entries = Array.from({ length: 8 }, (_, i) => entry(`e${i}`, 0, 1, 1));
    expect(endedEntries([...entries, entry('live', 0, 5, 1)], t(2))).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
  });
});
