import { describe, expect, it } from 'vitest';
import { routes } from '../../infra/routes.ts';
import { matchRoute } from '../../infra/local/server.ts';
import { compileTemplate } from '../../layers/http/route-match.ts';

/**
 * The local gateway looks a request's route up among the routes of its method and first path
 * segment only (issue 16): it must pick exactly what trying every route in order picked.
 */
const all = routes.map((r) => ({ route: r, tpl: compileTemplate(r.path) }));

function everyRoute(method: string, path: string) {
  let best: { route: (typeof routes)[number]; params: Record<string, string>; score: number } | undefined;
  for (const { route, tpl } of all) {
    if (route.method !== method && route.method !== 'ANY') continue;
    const params = tpl.match(path);
    if (!params) continue;
    const score = tpl.specificity * 2 + (route.method === 'ANY' ? 0 : 1);
    if (!best || score > best.score) best = { route, params, score };
  }
  return best && { route: best.route, params: best.params };
}

/** Every route's path with sample values, and its neighbours: suffixes, slashes, unknown tails. */
function paths(): string[] {
  const out = new Set<string>(['/', '', '/unknown', '/v1', '/v1/', '/v2/nodes', '/v1.1', '//v1/nodes', '/v1/nodes/%2F', '/healthz/x']);
  for (const r of routes) {
    const sample = r.path.replace(/\{[^}]+\+\}/g, 'a/b').replace(/\{[^}]+\}/g, 'x1');
    for (const p of [sample, `${sample}/`, `${sample}.json`, `${sample}/extra`, sample.replace(/\/[^/]*$/, ''), sample.toUpperCase()]) out.add(p);
  }
  return [...out];
}

describe('local gateway route lookup', () => {
  it('picks what trying every route in order picks, for every method and path', () => {
    let compared = 0;
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']) {
      for (const path of paths()) {
        const want = everyRoute(method, path);
        const got = matchRoute(method, path);
        expect({ method, path, route: got && `${got.route.method} ${got.route.path}`, params: got?.params }).toEqual({
          method,
          path,
          route: want && `${want.route.method} ${want.route.path}`,
          params: want?.params,
        });
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(1000);
  });
});
