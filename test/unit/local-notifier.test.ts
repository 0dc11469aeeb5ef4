import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalNotifier } from '../../infra/local/lifecycle.ts';

/**
 * The local stand-in for lease notifications (SLIPWAY_NOTIFY_WEBHOOK): one JSON POST per notice,
 * over kept-alive connections, and an error when the webhook refuses or does not answer (the
 * workflow's Finish retries it, as it would a failed EventBridge put).
 */
let server: Server | undefined;
let notifier: LocalNotifier | undefined;
afterEach(async () => {
  notifier?.close();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function webhook(answer: (req: IncomingMessage, body: string) => number): Promise<string> {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.writeHead(answer(req, body)).end();
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
}

describe('LocalNotifier', () => {
  it('posts each notice as JSON, reusing its connection', async () => {
    const got: { path?: string; type?: string; body: Record<string, unknown> }[] = [];
    const ports = new Set<number>();
    notifier = new LocalNotifier(
      await webhook((req, body) => {
        ports.add(req.socket.remotePort!);
        got.push({ path: req.url, type: req.headers['content-type'], body: JSON.parse(body) });
        return 204;
      }),
    );
    for (let i = 0; i < 3; i++) await notifier.publish('lease.event.start_lease', { lease_id: `l${i}`, lease_status: 'ACTIVE' });
    expect(got.map((g) => [g.path, g.type, g.body.event_type, (g.body.payload as { lease_id: string }).lease_id])).toEqual([
      ['/hook', 'application/json', 'lease.event.start_lease', 'l0'],
      ['/hook', 'application/json', 'lease.event.start_lease', 'l1'],
      ['/hook', 'application/json', 'lease.event.start_lease', 'l2'],
    ]);
    expect(typeof got[0]!.body.timestamp).toBe('string');
    expect(ports.size).toBe(1);
  });

  it('sends a notice again on a new connection when the webhook drops the kept-alive one it went out on', async () => {
    // Each connection's second request is dropped unanswered, as a server closing an idle
    // connection just as the next request arrives does (ECONNRESET on a reused socket).
    const seen = new Map<unknown, number>();
    const got: string[] = [];
    notifier = new LocalNotifier(
      await webhook((req, body) => {
        const n = (seen.get(req.socket) ?? 0) + 1;
        seen.set(req.socket, n);
        if (n === 2) {
          req.socket.destroy();
          return 204;
        }
        got.push((JSON.parse(body) as { payload: { lease_id: string } }).payload.lease_id);
        return 204;
      }),
    );
    await notifier.publish('lease.event.start_lease', { lease_id: 'l0' });
    await notifier.publish('lease.event.start_lease', { lease_id: 'l1' });
    expect(got).toEqual(['l0', 'l1']);
    expect(seen.size).toBe(2);
  });

  it('hands each notice to in-process subscribers as it leaves, with or without a webhook, until they unsubscribe', async () => {
    const got: string[] = [];
    notifier = new LocalNotifier();
    const stop = notifier.subscribe((type, detail) => got.push(`${type} ${String(detail.lease_id)}`));
    await notifier.publish('lease.event.start_lease', { lease_id: 'l0' });
    stop();
    await notifier.publish('lease.event.end_lease', { lease_id: 'l1' });
    expect(got).toEqual(['lease.event.start_lease l0']);
    // With a webhook: the subscriber hears it before the POST goes out.
    const order: string[] = [];
    notifier = new LocalNotifier(await webhook(() => (order.push('webhook'), 204)));
    notifier.subscribe(() => order.push('subscriber'));
    await notifier.publish('lease.event.start_lease', { lease_id: 'l2' });
    expect(order).toEqual(['subscriber', 'webhook']);
  });

  it('fails when the webhook refuses the notice', async () => {
    notifier = new LocalNotifier(await webhook(() => 500));
    await expect(notifier.publish('lease.event.end_lease', { lease_id: 'x' })).rejects.toThrow('notification webhook answered 500');
  });

  it('fails when nothing listens', async () => {
    const url = await webhook(() => 204);
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    notifier = new LocalNotifier(url);
    await expect(notifier.publish('lease.event.end_lease', { lease_id: 'x' })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('refuses a webhook that is not http(s), and sends nothing without one', async () => {
    expect(() => new LocalNotifier('file:///etc/passwd')).toThrow(/http\(s\) URL/);
    await expect(new LocalNotifier(undefined).publish('lease.event.start_lease', { lease_id: 'x' })).resolves.toBeUndefined();
  });
});
