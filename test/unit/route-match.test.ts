import { describe, expect, it } from 'vitest';
import { handlerKey } from '../../infra/routes.ts';
import { matchRoute } from '../../infra/local/server.ts';
import { compileTemplate } from '../../layers/http/route-match.ts';

/** Picks the most specific of several templates for a path, as the local gateway and surfaces do. */
function best(templates: string[], path: string): { template: string; params: Record<string, string> } | undefined {
  let out: { template: string; params: Record<string, string>; score: number } | undefined;
  for (const t of templates.map(compileTemplate)) {
    const params = t.match(path);
    if (params && (!out || t.specificity > out.score)) out = { template: t.template, params, score: t.specificity };
  }
  return out && { template: out.template, params: out.params };
}

describe('compileTemplate', () => {
  it('matches a literal template only on the exact path', () => {
    const t = compileTemplate('/v1/leases');
    expect(t.match('/v1/leases')).toEqual({});
    expect(t.match('/v1/leases/')).toBeUndefined();
    expect(t.match('/v1/leases/x')).toBeUndefined();
    expect(t.match('/v1/lease')).toBeUndefined();
  });

  it('captures a {param} within one segment only', () => {
    const t = compileTemplate('/v1/leases/{lease_id}');
    expect(t.match('/v1/leases/abc')).toEqual({ lease_id: 'abc' });
    expect(t.match('/v1/leases/abc/def')).toBeUndefined();
    expect(t.match('/v1/leases/')).toBeUndefined();
  });

  it('captures several params', () => {
    expect(compileTemplate('/v1.1/{project_id}/nodes/{node_id}').match('/v1.1/p1/nodes/n-2')).toEqual({ project_id: 'p1', node_id: 'n-2' });
  });

  it('treats regex characters in literals literally', () => {
    const t = compileTemplate('/v1/os-hosts/allocations.json');
    expect(t.match('/v1/os-hosts/allocations.json')).toEqual({});
    expect(t.match('/v1/os-hosts/allocationsXjson')).toBeUndefined();
    expect(compileTemplate('/v1.1/{proxy+}').match('/v1x1/a')).toBeUndefined();
  });

  it('URL-decodes parameters as API Gateway does', () => {
    const t = compileTemplate('/v1/os-hosts/properties/{property_name}');
    expect(t.match('/v1/os-hosts/properties/gpu%20model')).toEqual({ property_name: 'gpu model' });
    expect(t.match('/v1/os-hosts/properties/a%2Fb')).toEqual({ property_name: 'a/b' });
    expect(t.match('/v1/os-hosts/properties/caf%C3%A9')).toEqual({ property_name: 'café' });
  });

  it('keeps a parameter with a malformed percent-escape as sent', () => {
    expect(compileTemplate('/v1/leases/{lease_id}').match('/v1/leases/100%')).toEqual({ lease_id: '100%' });
  });

  it('lets {proxy+} swallow several segments, decoded', () => {
    const t = compileTemplate('/v1/leases/{proxy+}');
    expect(t.match('/v1/leases/a/b/c')).toEqual({ proxy: 'a/b/c' });
    expect(t.match('/v1/leases/a%20b/c')).toEqual({ proxy: 'a b/c' });
    expect(t.match('/v1/leases/x')).toEqual({ proxy: 'x' });
    expect(t.match('/v1/leases')).toBeUndefined();
  });

  it('ranks a literal segment above a parameter in the same place', () => {
    expect(compileTemplate('/v1/os-hosts/allocations').specificity).toBeGreaterThan(compileTemplate('/v1/os-hosts/{host_id}').specificity);
    expect(best(['/v1/os-hosts/{host_id}', '/v1/os-hosts/allocations'], '/v1/os-hosts/allocations')).toEqual({
      template: '/v1/os-hosts/allocations',
      params: {},
    });
    expect(best(['/v1/os-hosts/{host_id}', '/v1/os-hosts/allocations'], '/v1/os-hosts/17')).toEqual({
      template: '/v1/os-hosts/{host_id}',
      params: { host_id: '17' },
    });
  });

  it('ranks {proxy+} below a parameter template with the same literals', () => {
    expect(best(['/v1/leases/{proxy+}', '/v1/leases/{lease_id}'], '/v1/leases/abc')?.template).toBe('/v1/leases/{lease_id}');
    expect(best(['/v1/leases/{proxy+}', '/v1/leases/{lease_id}'], '/v1/leases/abc/def')?.template).toBe('/v1/leases/{proxy+}');
  });

  it('ranks {proxy+} below every non-greedy template that matches, as API Gateway does (full match before greedy)', () => {
    // API Gateway HTTP APIs: 1. full match of route and method, 2. greedy {proxy+}, 3. $default.
    const templates = ['/v1/leases/{proxy+}', '/v1/{collection}/{id}'];
    expect(best(templates, '/v1/leases/abc')?.template).toBe('/v1/{collection}/{id}');
    expect(compileTemplate('/a/b/c/{proxy+}').specificity).toBeLessThan(compileTemplate('/{x}/{y}/{z}/{w}').specificity);
  });
});

describe('matchRoute on the real route table', () => {
  it('routes /v1/os-hosts/allocations.json to the allocations route, not {host_id}', () => {
    const m = matchRoute('GET', '/v1/os-hosts/allocations.json');
    expect(m).toBeDefined();
    expect(m!.route.fn).toBe('blazar');
    expect(handlerKey(m!.route)).toBe('GET /v1/os-hosts/allocations');
    expect(m!.params).toEqual({});
  });

  it('routes /v1/os-hosts/allocations to the allocations route', () => {
    expect(handlerKey(matchRoute('GET', '/v1/os-hosts/allocations')!.route)).toBe('GET /v1/os-hosts/allocations');
  });

  it('routes /v1/os-hosts/properties before {host_id}', () => {
    expect(handlerKey(matchRoute('GET', '/v1/os-hosts/properties.json')!.route)).toBe('GET /v1/os-hosts/properties');
  });

  it('routes /v1/leases/abc.json to the {lease_id} route with the suffix left for the surface', () => {
    const m = matchRoute('GET', '/v1/leases/abc.json');
    expect(m!.route).toMatchObject({ method: 'GET', path: '/v1/leases/{lease_id}', fn: 'blazar' });
    expect(m!.params).toEqual({ lease_id: 'abc.json' });
  });

  it('routes /v1/os-hosts/17/allocation to the per-host allocation route', () => {
    const m = matchRoute('GET', '/v1/os-hosts/17/allocation');
    expect(m!.route.path).toBe('/v1/os-hosts/{host_id}/allocation');
    expect(m!.params).toEqual({ host_id: '17' });
  });

  it('routes a method without a concrete route to the ANY catch-all of the surface', () => {
    const m = matchRoute('PATCH', '/v1/leases/x');
    expect(m!.route).toMatchObject({ method: 'ANY', path: '/v1/leases/{proxy+}', fn: 'blazar' });
    expect(m!.params).toEqual({ proxy: 'x' });
    expect(matchRoute('PATCH', '/v1/leases')!.route).toMatchObject({ method: 'ANY', path: '/v1/leases' });
  });

  it('prefers a concrete method over ANY on the same path', () => {
    expect(matchRoute('GET', '/v1/leases')!.route).toMatchObject({ method: 'GET', path: '/v1/leases' });
    expect(matchRoute('DELETE', '/v1/leases/x')!.route).toMatchObject({ method: 'DELETE', path: '/v1/leases/{lease_id}' });
  });

  it('routes unknown paths under a surface prefix to its catch-all', () => {
    expect(matchRoute('GET', '/v1/os-hosts/17/unknown/deep')!.route).toMatchObject({ method: 'ANY', path: '/v1/os-hosts/{proxy+}' });
    expect(matchRoute('GET', '/v1.1/p1/unknown')!.route).toMatchObject({ method: 'ANY', path: '/v1.1/{proxy+}', fn: 'native' });
  });

  it('routes native collection paths with the project in the path', () => {
    const m = matchRoute('GET', '/v1.1/proj-a/nodes/n1');
    expect(m!.route).toMatchObject({ method: 'GET', path: '/v1.1/{project_id}/nodes/{node_id}', fn: 'native' });
    expect(m!.params).toEqual({ project_id: 'proj-a', node_id: 'n1' });
    expect(handlerKey(matchRoute('GET', '/v1.1/proj-a/leases.json')!.route)).toBe('GET /v1.1/{project_id}/leases');
  });

  it('routes /healthz to the system function', () => {
    expect(matchRoute('GET', '/healthz')!.route).toMatchObject({ fn: 'system', auth: 'none' });
  });

  it('answers undefined for an unknown prefix or a method no route allows', () => {
    expect(matchRoute('GET', '/nope')).toBeUndefined();
    expect(matchRoute('GET', '/v2/leases')).toBeUndefined();
    expect(matchRoute('GET', '/v1/')).toBeUndefined();
    expect(matchRoute('POST', '/healthz')).toBeUndefined();
  });
});
