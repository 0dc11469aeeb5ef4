import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/app.ts';
import { functionNames, routes } from '../../infra/routes.ts';

/**
 * The API edge as deployed: one invocation per request. No route runs a Lambda authorizer (each
 * surface authenticates its requests itself, layers/http/credentials.ts), so API Gateway invokes
 * only the route's surface function; the API stack has one function per surface and no other.
 * Synthesized once, esbuild skipped.
 */
const outdir = mkdtempSync(join(tmpdir(), 'slipway-cdk-edge-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));
const built = buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
const api = Template.fromStack(built.api);

describe('API edge: one invocation per request', () => {
  it('has no authorizer, and every route reaches its surface with AuthorizationType NONE', () => {
    api.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
    const found = Object.values(api.findResources('AWS::ApiGatewayV2::Route'));
    expect(found).toHaveLength(routes.length);
    for (const r of found) {
      expect(r.Properties.AuthorizationType, r.Properties.RouteKey as string).toBe('NONE');
      expect(r.Properties.AuthorizerId).toBeUndefined();
    }
  });

  it('deploys one function per surface and no authorizer function', () => {
    const fns = Object.values(api.findResources('AWS::Lambda::Function')).map((f) => String(f.Properties.Description ?? ''));
    expect(fns.filter((d) => /surface/.test(d))).toHaveLength(functionNames.length);
    expect(fns.filter((d) => /authoriz|credentials to a principal/i.test(d))).toEqual([]);
  });
});
