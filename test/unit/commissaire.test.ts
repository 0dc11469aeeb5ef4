import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { handler } from '../../functions/api/commissaire.ts';
import type { HttpEvent } from '../../layers/http/surface.ts';
import { cachedToken } from '../support/principal.ts';
import { ClusterHostsPut, ClusterPut, DeployPut, OperationPut } from '../../layers/core/commissaire/clusters.ts';
import { HostPut } from '../../layers/core/commissaire/hosts.ts';
import { canonicalAddress, clusterHealth, fingerprint, parseAddress, parseName, sameSet } from '../../layers/core/commissaire/model.ts';
import { ContainerManagerPut, NetworkPut } from '../../layers/core/commissaire/networks.ts';
import { ConflictError, MethodNotAllowedError, NotFoundError, UnauthorizedError, ValidationError } from '../../layers/core/errors.ts';
import { renderError } from '../../layers/http/errors.ts';

describe('Commissaire addresses', () => {
  it('keeps IPv4 as given and writes IPv6 in one canonical form, raw or URL-encoded', () => {
    expect(canonicalAddress('127.0.0.1')).toBe('127.0.0.1');
    for (const v6 of ['::1', '0:0:0:0:0:0:0:1', '%3A%3A1', '%3a%3a1', '0::1']) expect(canonicalAddress(v6), v6).toBe('::1');
    expect(canonicalAddress('FE80::A')).toBe('fe80::a');
    expect(canonicalAddress('::ffff:127.0.0.1')).toBe('::ffff:7f00:1');
  });

  it('refuses anything that is not an address, and IPv6 zone ids', () => {
    for (const bad of ['', 'localhost', '1.2.3', '256.1.1.1', '01.2.3.4', 'fe80::1%eth0', 'fe80::1%25eth0', '%zz', '::1/64']) {
      expect(canonicalAddress(bad), bad).toBeUndefined();
      expect(() => parseAddress(bad), bad).toThrow(ValidationError);
    }
  });

  it('reads names of upstream\'s pattern only: others are 404 to read, 400 to create', () => {
    expect(parseName('blue_1-a')).toBe('blue_1-a');
    expect(() => parseName('a.b')).toThrow(NotFoundError);
    expect(() => parseName('a b', true)).toThrow(ValidationError);
  });
});

describe('clusterHealth', () => {
  const statuses: Record<string, string> = { a: 'active', b: 'active', c: 'failed', d: 'investigating' };
  const of = (a: string) => statuses[a];

  it('is ok without members and with only active members', () => {
    expect(clusterHealth([], of)).toEqual({ status: 'ok', hosts: { total: 0, available: 0, unavailable: 0 } });
    expect(clusterHealth(['a', 'b'], of)).toEqual({ status: 'ok', hosts: { total: 2, available: 2, unavailable: 0 } });
  });

  it('is degraded with any non-active member, failed with none active', () => {
    expect(clusterHealth(['a', 'c'], of)).toEqual({ status: 'degraded', hosts: { total: 2, available: 1, unavailable: 1 } });
    expect(clusterHealth(['c', 'd'], of)).toEqual({ status: 'failed', hosts: { total: 2, available: 0, unavailable: 2 } });
    expect(clusterHealth(['gone'], of).status).toBe('failed');
  });
});

describe('comparisons', () => {
  it('compares host lists as sets', () => {
    expect(sameSet(['a', 'b'], ['b', 'a', 'a'])).toBe(true);
    expect(sameSet([], [])).toBe(true);
    expect(sameSet(['a'], ['a', 'b'])).toBe(false);
  });

  it('fingerprints definitions independently of key order', () => {
    expect(fingerprint({ type: 'x', options: { b: 1, a: [1, { d: 2, c: 3 }] } })).toBe(fingerprint({ options: { a: [1, { c: 3, d: 2 }], b: 1 }, type: 'x' }));
    expect(fingerprint({ options: { a: 1 } })).not.toBe(fingerprint({ options: { a: '1' } }));
  });
});

describe('request schemas', () => {
  it('takes the cluster body commctl sends, deprecated type included, and refuses unknown fields', () => {
    expect(ClusterPut.parse({ type: 'kubernetes', network: 'default', container_manager: '' })).toMatchObject({ network: 'default', container_manager: '' });
    expect(ClusterPut.safeParse({ hostset: ['1.2.3.4'] }).success).toBe(false);
  });

  it('needs old and new for a hostset change, a non-empty version for deploy, nothing for upgrade', () => {
    expect(ClusterHostsPut.safeParse({ old: [] }).success).toBe(false);
    expect(DeployPut.safeParse({}).success).toBe(false);
    expect(DeployPut.safeParse({ version: '  ' }).success).toBe(false);
    expect(DeployPut.parse({ version: '7.2.6' })).toEqual({ version: '7.2.6' });
    expect(OperationPut.parse({})).toEqual({});
  });

  it('needs a key to register a host; remote_user is a user name', () => {
    expect(HostPut.safeParse({ cluster: 'c' }).success).toBe(false);
    expect(HostPut.parse({ ssh_priv_key: 'a2V5', cluster: null })).toMatchObject({ ssh_priv_key: 'a2V5', cluster: null });
    expect(HostPut.safeParse({ ssh_priv_key: 'a2V5', remote_user: 'root; rm -rf /' }).success).toBe(false);
  });

  it('defaults a network to flannel_etcd and stores flanneld_service as flannel_server, which needs host:port', () => {
    expect(NetworkPut.parse({})).toEqual({ type: 'flannel_etcd', options: {} });
    expect(NetworkPut.parse({ type: 'flanneld_service', options: { address: '10.0.0.1:8080' } })).toEqual({ type: 'flannel_server', options: { address: '10.0.0.1:8080' } });
    expect(NetworkPut.parse({ type: 'flannel_server', options: { address: '[::1]:8080' } }).type).toBe('flannel_server');
    for (const address of [undefined, '10.0.0.1', 'host:0', 'host:99999', 'a b:1']) {
      expect(NetworkPut.safeParse({ type: 'flannel_server', options: { address } }).success, String(address)).toBe(false);
    }
    expect(NetworkPut.safeParse({ type: 'calico' }).success).toBe(false);
  });

  it('validates OpenShift options: server_url (or its alias apiserver) http(s), certificate pair', () => {
    expect(ContainerManagerPut.parse({ options: { apiserver: 'https://os:8443' } })).toEqual({ type: 'openshift', options: { server_url: 'https://os:8443' } });
    expect(ContainerManagerPut.parse({ type: 'openshift', options: { server_url: 'http://os', token: 't' } }).options).toEqual({ server_url: 'http://os', token: 't' });
    for (const options of [{}, { server_url: 'ftp://os' }, { server_url: 'x' }, { server_url: 'http://a', apiserver: 'http://b' }, { server_url: 'http://a', certificate_path: '/c' }, { server_url: 'http://a', colour: 'red' }]) {
      expect(ContainerManagerPut.safeParse({ options }).success, JSON.stringify(options)).toBe(false);
    }
    expect(ContainerManagerPut.parse({ type: 'trivial' })).toEqual({ type: 'trivial', options: {} });
    expect(ContainerManagerPut.safeParse({ type: 'kubernetes' }).success).toBe(false);
  });
});

describe("renderError('commissaire')", () => {
  it('answers the bare reason phrase as text/html', () => {
    for (const [err, status, phrase] of [
      [new ValidationError('x'), 400, 'Bad Request'],
      [new NotFoundError('x'), 404, 'Not Found'],
      [new ConflictError('Cluster c1 already has a deploy in process'), 409, 'Conflict'],
      [new Error('table=slipway password=hunter2'), 500, 'Internal Server Error'],
    ] as const) {
      const r = renderError('commissaire', err);
      expect(r).toEqual({ statusCode: status, headers: { 'Content-Type': 'text/html' }, body: phrase });
    }
  });

  it('answers missing credentials with 403 Forbidden, never 401', () => {
    expect(renderError('commissaire', new UnauthorizedError('Authentication required'))).toMatchObject({ statusCode: 403, body: 'Forbidden' });
  });

  it("keeps a 405's Allow header", () => {
    expect(renderError('commissaire', new MethodNotAllowedError('no', ['GET'])).headers).toEqual({ Allow: 'GET', 'Content-Type': 'text/html' });
  });
});

describe('PUT /api/v0/host without an address', () => {
  it('is 400 when neither the body nor the request has one (no source IP)', async () => {
    const admin = JSON.stringify({ token_id: 't', project_id: 'admin', user_id: 'u', roles: ['admin'] });
    const event = {
      version: '2.0',
      routeKey: 'PUT /api/v0/host',
      rawPath: '/api/v0/host',
      rawQueryString: '',
      headers: { 'content-type': 'application/json', 'x-auth-token': cachedToken(admin) },
      body: JSON.stringify({ ssh_priv_key: 'a2V5' }),
      isBase64Encoded: false,
      requestContext: { http: { method: 'PUT', path: '/api/v0/host', sourceIp: '' }, requestId: 'unit' },
    } as unknown as HttpEvent;
    const context = { functionName: 'unit', awsRequestId: 'unit', getRemainingTimeInMillis: () => 30_000 } as unknown as Context;
    const res = await handler(event, context);
    expect(res).toMatchObject({ statusCode: 400, body: 'Bad Request', headers: { 'Content-Type': 'text/html' } });
  });
});
