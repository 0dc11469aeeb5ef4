import { ok, surface } from '#http/surface.ts';

/** Liveness for scripts and load balancers: answers without credentials and touches nothing. */
export const handler = surface(
  { style: 'sahara', jsonSuffix: false, anonymous: ['GET /healthz'] },
  { 'GET /healthz': async () => ok({ status: 'ok' }) },
);
