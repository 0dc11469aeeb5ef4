import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_BODIES, OPENAPI_FILE } from '../../infra/openapi.ts';
import type { ErrorStyle } from '../../layers/http/errors.ts';
import { apiUrl } from '../support/api.ts';

/**
 * `GET /openapi.json` over HTTP against the local stack (the system function, as on AWS): no
 * token needed, JSON, the committed document. And the document tells the truth about
 * authentication: every operation it says needs a token answers 401 (Commissaire 403) without
 * one, in the error format it documents for that surface.
 */
const committed = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as {
  paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, { $ref?: string }> }>>;
  components: { responses: Record<string, { content: Record<string, { schema: { $ref: string } }> }> };
};

describe('GET /openapi.json', () => {
  it('answers 200 with the committed document, without a token', async () => {
    const res = await fetch(`${apiUrl()}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual(committed);
  });

  it('answers a browser (HTML first in Accept), gzipped when asked, and ignores a bad token', async () => {
    const res = await fetch(`${apiUrl()}/openapi.json`, {
      headers: { Accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'Accept-Encoding': 'gzip', 'X-Auth-Token': 'not-a-token' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect((await res.json()) as unknown).toEqual(committed);
  });
});

/** The error style behind a `#/components/responses/<Name>` reference. */
function styleOf(ref: string): ErrorStyle {
  const name = ref.split('/').pop()!.replace(/Unauthorized$/, '');
  const style = (Object.keys(ERROR_BODIES) as ErrorStyle[]).find((s) => ERROR_BODIES[s].name === name);
  expect(style, ref).toBeDefined();
  return style!;
}

describe('the document against the running API', () => {
  it('every operation that needs a token answers 401 (Commissaire 403) without one, in the documented format', async () => {
    const problems: string[] = [];
    let checked = 0;
    for (const [path, ops] of Object.entries(committed.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        if (Array.isArray(op.security) && op.security.length === 0) continue;
        const [status, ref] = Object.entries(op.responses).find(([s]) => s === '401' || s === '403') ?? [];
        if (!status || !ref?.$ref) {
          problems.push(`${method} ${path}: no 401/403 documented`);
          continue;
        }
        const url = `${apiUrl()}${path.replace(/\{[^}]+\}/g, 'x9')}`;
        const res = await fetch(url, { method: method.toUpperCase(), headers: { Accept: 'application/json' } });
        checked++;
        if (String(res.status) !== status) {
          problems.push(`${method} ${path}: ${res.status}, documented ${status}`);
          continue;
        }
        const style = styleOf(ref.$ref);
        const text = await res.text();
        if (method === 'head') continue; // the status alone: HEAD answers carry no body
        const body = ERROR_BODIES[style].media === 'application/json' ? JSON.parse(text) : text;
        if (!ERROR_BODIES[style].schema.safeParse(body).success) problems.push(`${method} ${path}: body ${text.slice(0, 80)} is not ${style}'s`);
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(80);
  });
});
