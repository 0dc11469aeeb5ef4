import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FetchPayload, runFetch } from '../../agent/fetch-job.ts';
import { describeFailure, execute, parseJob } from '../../agent/executor.ts';

let server: Server;
let base: string;
const uploads: Buffer[] = [];
const BIG = Buffer.alloc(100 * 1024, 7);

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.url === '/design.yaml') res.writeHead(200, { 'Content-Type': 'application/x-yaml' }).end('schema: x\nname: ü\n');
      else if (req.url === '/binary') res.writeHead(200).end(Buffer.from([0xff, 0xfe, 0x00, 0x01]));
      else if (req.url === '/big') res.writeHead(200).end(BIG);
      else if (req.url === '/echo') res.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify({ method: req.method, auth: req.headers.authorization, body: body.toString() }));
      else if (req.url === '/moved') res.writeHead(302, { Location: '/design.yaml' }).end();
      else if (req.url === '/away') res.writeHead(302, { Location: 'http://127.0.0.3:1/secret' }).end();
      else if (req.url === '/upload' && req.method === 'PUT') {
        uploads.push(body);
        res.writeHead(200).end();
      } else res.writeHead(404).end('no');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const policy = { inlineMaxBytes: 60 * 1024 };
const payload = (p: Record<string, unknown>) => FetchPayload.parse(p);

describe('the agent\'s fetch job', () => {
  it('answers a text body inline, redirects followed, and a binary one as base64', async () => {
    const out = (await execute(parseJob('fetch', { url: `${base}/moved` }), { makeDriver: () => { throw new Error('no BMC'); }, ssh: { connectTimeoutMs: 1, commandTimeoutMs: 1, maxOutputBytes: 1 } })) as Record<string, unknown>;
    expect(out).toMatchObject({ status: 200, content_type: 'application/x-yaml', text: 'schema: x\nname: ü\n', size: 19 });
    expect(await runFetch(payload({ url: `${base}/binary` }), policy)).toMatchObject({ status: 200, base64: Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('base64') });
    expect(await runFetch(payload({ url: `${base}/nothing` }), policy)).toMatchObject({ status: 404, text: 'no' });
  });

  it('makes a container manager\'s call: method, headers and body as sent', async () => {
    const out = (await runFetch(payload({ url: `${base}/echo`, method: 'POST', headers: { Authorization: 'Bearer t0k' }, body: '{"a":1}' }), policy)) as { status: number; text: string };
    expect(out.status).toBe(201);
    expect(JSON.parse(out.text)).toEqual({ method: 'POST', auth: 'Bearer t0k', body: '{"a":1}' });
  });

  it('bounds the body: over max_bytes fails; over the inline limit goes to upload_url, or fails without one', async () => {
    await expect(runFetch(payload({ url: `${base}/big`, max_bytes: 1000 }), policy)).rejects.toThrow(/more than the 1000 bytes the job allows/);
    await expect(runFetch(payload({ url: `${base}/big` }), policy)).rejects.toThrow(/102400 bytes, more than the 61440 a job result carries inline \(and the job gave no upload_url\)/);
    const out = await runFetch(payload({ url: `${base}/big`, upload_url: `${base}/upload` }), policy);
    expect(out).toMatchObject({ status: 200, size: BIG.length, uploaded: true });
    expect(uploads.at(-1)!.equals(BIG)).toBe(true);
  });

  it("honours the agent's own policy, redirects included", async () => {
    const mine = { ...policy, urlPrefixes: [`${base}/`] };
    await expect(runFetch(payload({ url: 'http://127.0.0.3:1/x' }), mine)).rejects.toThrow('URL http://127.0.0.3:1/x is not allowed by this agent (fetch.url_prefixes)');
    await expect(runFetch(payload({ url: `${base}/away` }), mine)).rejects.toThrow(/127.0.0.3:1\/secret is not allowed by this agent/);
    expect(await runFetch(payload({ url: `${base}/design.yaml` }), mine)).toMatchObject({ status: 200 });
  });

  it('refuses a bad job without echoing header values', () => {
    const err = (() => {
      try {
        parseJob('fetch', { url: 'file:///etc/passwd', headers: { Authorization: 42 } });
      } catch (e) {
        return e;
      }
    })();
    const text = describeFailure(err);
    expect(text).toMatch(/^invalid job: job fetch: url: .*headers\.Authorization/);
  });
});
