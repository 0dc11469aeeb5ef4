import type { Context } from 'aws-lambda';
import type { FunctionName } from '../routes.ts';
import type { HttpEvent, HttpResult } from '#http/surface.ts';
import type { LambdaBundles } from './bundles.ts';
import { type Handler, invokeLambda } from './lambda.ts';

/**
 * The surface functions the local server invokes: the very handlers the CDK stack deploys
 * (`functions/api/<name>.ts`, export `handler`), loaded lazily like a cold start.
 */
export type LambdaHandler = (event: HttpEvent, context: Context) => Promise<HttpResult>;
export type FunctionLoader = (name: FunctionName) => Promise<LambdaHandler>;

/** In-process: the sources, sharing the stack's ports (`npm start`). */
export async function loadFunction(name: FunctionName): Promise<LambdaHandler> {
  const mod = (await import(`../../functions/api/${name}.ts`)) as { handler: LambdaHandler };
  return mod.handler;
}

/**
 * The bundles CDK deploys (`npm start -- --bundled`), each building its own ports from the
 * environment as on Lambda, invoked as Lambda invokes them (JSON in and out; a thrown error is
 * the gateway's 500).
 */
export function bundledFunctions(bundles: LambdaBundles): FunctionLoader {
  return async (name) => {
    const handler = await bundles.handler<Handler>(`functions/api/${name}.ts`);
    return (event, context) => invokeLambda(handler, event, context) as Promise<HttpResult>;
  };
}
