import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { startTestAgent } from '../support/agent.ts';
import { call } from '../support/api.ts';
import { siteDesign } from '../support/drydock-site.ts';
import { startOwnStack } from '../support/own-stack.ts';

/**
 * Fetches that reach into a site go through its agent (issue 12 item 4): this stack maps
 * 127.0.0.2 to site `fetchsite` (SLIPWAY_SITE_ADDRESSES) and fetches 127.0.0.1 itself (the local
 * stack's default loopback); a real agent of the site runs the `fetch` jobs.
 */
const SITE = 'fetchsite';
let stopStack: () => Promise<void>;
let server: Server;
let port: number;
let agent: Agent;
const seen: string[] = [];

beforeAll(async () => {
  const design = siteDesign({ site: SITE, redfishPort: 1, nodes: ['n1'], root: '/tmp/unused' });
  server = createServer((req, res) => {
    seen.push(`${req.socket.localAddress} ${req.url}`);
    if (req.url === '/site.yaml') res.writeHead(200, { 'Content-Type': 'application/x-yaml' }).end(design);
    else res.writeHead(404).end();
  });
  // 0.0.0.0: the same server answers as 127.0.0.1 (public, for this stack) and 127.0.0.2 (the site).
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  port = (server.address() as { port: number }).port;
  ({ stop: stopStack } = await startOwnStack('site-fetch', { env: { SLIPWAY_SITE_ADDRESSES: JSON.stringify({ [SITE]: ['127.0.0.2'] }) } }));
  agent = await startTestAgent(SITE);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await stopStack?.();
  await new Promise<void>((r) => server.close(() => r()));
});

const validate = (href: string) => call('POST', '/api/v1.0/validatedesign', { body: { rel: 'design', href, type: 'application/x-yaml' } });

describe('design_ref fetches by address', () => {
  it("an address inside a site is fetched by the site's agent as a fetch job", async () => {
    const before = agent.stats.claimed;
    const res = await validate(`http://127.0.0.2:${port}/site.yaml`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    // Counted when the agent claims, before it fetches: the answer above came after.
    expect(agent.stats.claimed).toBe(before + 1);
    expect(seen).toContain(`127.0.0.2 /site.yaml`);
  });

  it('a public address is read by the control plane as before (no job)', async () => {
    const before = agent.stats.claimed;
    const res = await validate(`http://127.0.0.1:${port}/site.yaml`);
    expect(res.status).toBe(200);
    expect(agent.stats.claimed).toBe(before);
  });

  it("an internal address no site is named for is refused, saying which setting to change", async () => {
    const res = await validate(`http://deckhand:${port}/site.yaml`);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/site-internal address and no site is named for it.*SLIPWAY_SITE_ADDRESSES/);
  });

  it("the agent's HTTP error is the design's error", async () => {
    const res = await validate(`http://127.0.0.2:${port}/missing.yaml`);
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain(`could not be fetched: HTTP 404 (fetched by the agent of site ${SITE})`);
  });
});
