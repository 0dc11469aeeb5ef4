import type { Context } from 'aws-lambda';
import type { FunctionName } from '../routes.ts';
import type { HttpEvent, HttpResult } from '#http/surface.ts';

/**
 * The surface functions the local server invokes: the very handlers the CDK stack deploys
 * (`functions/api/<name>.ts`, export `handler`), loaded lazily like a cold start.
 */
export type LambdaHandler = (event: HttpEvent, context: Context) => Promise<HttpResult>;

export async function loadFunction(name: FunctionName): Promise<LambdaHandler> {
  const mod = (await import(`../../functions/api/${name}.ts`)) as { handler: LambdaHandler };
  return mod.handler;
}
