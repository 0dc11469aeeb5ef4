import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { getDeps } from '../../layers/aws/deps.ts';
import { S3BlobStore } from '../../layers/aws/s3-blobs.ts';
import { newTaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import { verifySigV4 } from '../../infra/local/s3-auth.ts';
import { seedBootActions } from '../support/bootactions.ts';
import { startMain, stopMain } from '../support/npm-start.ts';
import { startOwnStack } from '../support/own-stack.ts';

/**
 * What the local stack exposes: its database, object store and API listen on loopback only (the
 * listening sockets of the stack's own processes, read from /proc: no traffic leaves loopback),
 * its data directory and files are the owner's only, and the object store refuses anything that
 * is not signed while the presigned URLs the API hands out keep working.
 */
const run = promisify(execFile);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

// --- /proc: who listens where ------------------------------------------------------------------

interface Listener {
  address: string;
  port: number;
  inode: string;
}

/** /proc/net/tcp holds IPv4 addresses as one little-endian 32-bit word. */
function ipv4(hex: string): string {
  return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');
}

/** /proc/net/tcp6: four little-endian 32-bit words; returned in full (8 groups) form. */
function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (const i of [3, 2, 1, 0]) bytes.push(parseInt(word.slice(i * 2, i * 2 + 2), 16));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':');
}

/** Every TCP socket in LISTEN state in this network namespace, by inode. */
function tcpListeners(): Map<string, Listener> {
  const out = new Map<string, Listener>();
  for (const [file, decode] of [
    ['/proc/net/tcp', ipv4],
    ['/proc/net/tcp6', ipv6],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const [addr, port] = f[1]!.split(':') as [string, string];
      out.set(f[9]!, { address: decode(addr), port: parseInt(port, 16), inode: f[9]! });
    }
  }
  return out;
}

const LOOPBACK = new Set(['127.0.0.1', '0:0:0:0:0:0:0:1']);

function socketInodes(pid: number): string[] {
  const fdDir = `/proc/${pid}/fd`;
  const out: string[] = [];
  let fds: string[];
  try {
    fds = readdirSync(fdDir);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(join(fdDir, fd)));
      if (m) out.push(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** `pid` and every process below it. */
function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...(parents.get(p) ?? []));
  }
  return out;
}

const commOf = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
};

/** The listening TCP sockets the given processes hold, with their owner. */
function listenersOf(pids: number[]): (Listener & { pid: number; comm: string })[] {
  const all = tcpListeners();
  const out: (Listener & { pid: number; comm: string })[] = [];
  for (const pid of pids) {
    for (const inode of socketInodes(pid)) {
      const l = all.get(inode);
      if (l) out.push({ ...l, pid, comm: commOf(pid) });
    }
  }
  return out;
}

describe('the /proc reader itself', () => {
  it('decodes loopback and wildcard addresses as the kernel writes them', () => {
    expect(ipv4('0100007F')).toBe('127.0.0.1');
    expect(ipv4('00000000')).toBe('0.0.0.0');
    expect(ipv6('00000000000000000000000001000000')).toBe('0:0:0:0:0:0:0:1');
    expect(ipv6('0000000000000000FFFF00000100007F')).toBe('0:0:0:0:0:ffff:7f00:1');
    expect(ipv6('00000000000000000000000000000000')).toBe('0:0:0:0:0:0:0:0');
  });
});

// --- the data directory ------------------------------------------------------------------------

/** Every directory and file under `dir` (itself included) whose mode is not owner-only. */
function looseModes(dir: string): string[] {
  const loose: string[] = [];
  const walk = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    const mode = st.mode & 0o777;
    if (st.isDirectory()) {
      if (mode !== 0o700) loose.push(`${p} ${mode.toString(8)}`);
      for (const e of readdirSync(p)) walk(join(p, e));
    } else if (mode !== 0o600) {
      loose.push(`${p} ${mode.toString(8)}`);
    }
  };
  walk(dir);
  return loose;
}

// --- the object store --------------------------------------------------------------------------

const BUCKET = 'slipway-bootdata';

async function status(url: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  return { status: res.status, body: await res.text() };
}

/** Requests nobody signed: listing every bucket, listing the bucket, reading an object. */
async function expectUnsignedRefused(s3: string, key: string): Promise<void> {
  const path = key.split('/').map(encodeURIComponent).join('/');
  for (const [what, url, method] of [
    ['list buckets', `${s3}/`, 'GET'],
    ['list bucket', `${s3}/${BUCKET}`, 'GET'],
    ['list bucket v2', `${s3}/${BUCKET}?list-type=2&prefix=bootdata/`, 'GET'],
    ['get object', `${s3}/${BUCKET}/${path}`, 'GET'],
    ['head object', `${s3}/${BUCKET}/${path}`, 'HEAD'],
    ['put object', `${s3}/${BUCKET}/${path}`, 'PUT'],
    ['delete object', `${s3}/${BUCKET}/${path}`, 'DELETE'],
  ] as const) {
    const r = await status(url, { method, ...(method === 'PUT' ? { body: 'overwritten' } : {}) });
    expect(r.status, `${what}: ${r.body}`).toBe(403);
    if (method !== 'HEAD') expect(r.body, what).toContain('<Code>AccessDenied</Code>');
  }
  // A made-up signature with the right key id (s3rver alone accepted any) and a SigV2 URL.
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d+/g, '');
  const forged = await status(`${s3}/${BUCKET}`, {
    headers: {
      Authorization: `AWS4-HMAC-SHA256 Credential=S3RVER/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${'0'.repeat(64)}`,
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      'x-amz-date': amzDate,
    },
  });
  expect(forged.status).toBe(403);
  expect(forged.body).toContain('<Code>SignatureDoesNotMatch</Code>');
  const v2 = await status(`${s3}/${BUCKET}/${path}?AWSAccessKeyId=S3RVER&Expires=4102444800&Signature=AAAA`);
  expect(v2.status).toBe(403);
}

describe('npm start: what it exposes', () => {
  it('listens on loopback only, keeps its data directory owner-only (fixing an old one), and refuses unsigned object requests', async () => {
    // A data directory as an older version left it: 0755, files 0644.
    const dataDir = mkdtempSync(join(tmpdir(), 'slipway-exposure-'));
    dirs.push(dataDir);
    chmodSync(dataDir, 0o755);
    const token = `slp_${randomBytes(16).toString('hex')}`;
    writeFileSync(join(dataDir, 'admin-token'), `${token}\n`, { mode: 0o644 });
    writeFileSync(join(dataDir, 'secret.key'), randomBytes(32).toString('base64'), { mode: 0o644 });
    mkdirSync(join(dataDir, 'dynamodb'), { mode: 0o755 });
    chmodSync(join(dataDir, 'admin-token'), 0o644);
    chmodSync(join(dataDir, 'secret.key'), 0o644);
    chmodSync(join(dataDir, 'dynamodb'), 0o755);

    const s = await startMain(dataDir);
    try {
      const apiPort = Number(new URL(s.url).port);
      const tree = processTree(s.child.pid!);
      const listeners = listenersOf(tree);
      const described = listeners.map((l) => `${l.comm}[${l.pid}] ${l.address}:${l.port}`).join(', ');
      // The API, the object store and DynamoDB Local (in the JVM), nothing on another address.
      expect(listeners.length, described).toBeGreaterThanOrEqual(3);
      for (const l of listeners) expect(LOOPBACK.has(l.address), described).toBe(true);
      expect(listeners.some((l) => l.comm === 'java'), described).toBe(true);
      expect(listeners.some((l) => l.port === apiPort), described).toBe(true);

      // The admin token it found is the one in the (fixed) file.
      expect((await fetch(`${s.url}/v1.1/admin/tokens`, { headers: { 'X-Auth-Token': token } })).status).toBe(200);

      // The object store: the JS process's listener that is not the API.
      const ownPids = new Set(listeners.filter((l) => l.comm !== 'java').map((l) => l.pid));
      const s3Ports = listeners.filter((l) => ownPids.has(l.pid) && l.port !== apiPort).map((l) => l.port);
      expect(s3Ports, described).toHaveLength(1);
      const s3 = `http://127.0.0.1:${s3Ports[0]}`;
      // Signed with the stack's own secret, which only the data directory's owner can read.
      const blobs = new S3BlobStore({ bucket: BUCKET, endpoint: s3, secretAccessKey: readFileSync(join(dataDir, 's3-secret'), 'utf8').trim() });

      const key = `bootdata/${randomUUID()}/n01/units.tar.gz`;
      await blobs.put(key, new TextEncoder().encode('tarball'), 'application/gzip');
      await expectUnsignedRefused(s3, key);
      // Signed requests still work, and a presigned URL is good for curl.
      expect((await blobs.get(key))?.toString()).toBe('tarball');
      // Signed with s3rver's well-known secret instead: refused.
      await expect(new S3BlobStore({ bucket: BUCKET, endpoint: s3, secretAccessKey: 'S3RVER' }).get(key)).rejects.toThrow();
      const url = await blobs.presignGet(key, 60);
      const { stdout } = await run('curl', ['-sf', url]);
      expect(stdout).toBe('tarball');
      // The unsigned PUT above did not overwrite it.
      expect((await blobs.get(key))?.toString()).toBe('tarball');

      // Everything it keeps: the directory, DynamoDB's file, the objects, the key, the token.
      const entries = readdirSync(dataDir).sort();
      expect(entries).toEqual(['admin-token', 'dynamodb', 's3', 's3-secret', 'secret.key']);
      expect(readdirSync(join(dataDir, 'dynamodb'))).toContain('shared-local-instance.db');
      expect(looseModes(dataDir)).toEqual([]);
    } finally {
      expect(await stopMain(s.child)).toBe(0);
    }
  });
});

describe('a stack in this process: what it exposes', () => {
  it('listens on loopback only; the presigned URL the API hands out works, unsigned or altered requests do not', async () => {
    const { stack, stop: stopStack } = await startOwnStack('exposure');
    try {
      expect(stack.dynamoPid).toBeGreaterThan(0);
      const listeners = listenersOf([process.pid, stack.dynamoPid!]);
      const described = listeners.map((l) => `${l.comm}[${l.pid}] ${l.address}:${l.port}`).join(', ');
      for (const port of [new URL(stack.url).port, new URL(stack.s3Endpoint).port, new URL(stack.dynamoEndpoint).port]) {
        expect(listeners.some((l) => l.port === Number(port)), `${port} in ${described}`).toBe(true);
      }
      for (const l of listeners) expect(LOOPBACK.has(l.address), described).toBe(true);
      expect(lstatSync(stack.dataDir).mode & 0o777).toBe(0o700);

      // A node as a deploy leaves it: its tarball in the bucket and a context with its key.
      const d = getDeps();
      const task = newTaskRecord({ task_id: randomUUID(), action: 'deploy_nodes', design_ref: 'slipway://designs/exposure', created: new Date().toISOString(), status: 'running', created_by: 'tester' });
      await d.drydock.createTask(task);
      const hostname = `exposure-${randomUUID().slice(0, 8)}`;
      const prefix = `bootdata/${task.task_id}/${hostname}`;
      await d.blobs.put(`${prefix}/units.tar.gz`, new TextEncoder().encode('units'), 'application/gzip');
      await d.blobs.put(`${prefix}/files.tar.gz`, new TextEncoder().encode('files'), 'application/gzip');
      const { key: nodeKey, ctx } = await seedBootActions(d, task, hostname, [{ name: 'install' }]);

      const res = await fetch(`${stack.url}/api/v1.0/bootactions/nodes/${hostname}/units`, { redirect: 'manual', headers: { 'X-Bootaction-Key': nodeKey } });
      expect(res.status).toBe(302);
      const location = res.headers.get('location')!;
      expect(new URL(location).origin).toBe(new URL(stack.s3Endpoint).origin);
      expect(verifySigV4({ method: 'GET', url: location.slice(new URL(location).origin.length), headers: { host: new URL(location).host } }, { S3RVER: process.env.S3_SECRET_ACCESS_KEY! }).ok).toBe(true);
      // The URL works, with fetch and with curl as a node uses it.
      const got = await fetch(location);
      expect(got.status).toBe(200);
      expect(await got.text()).toBe('units');
      expect((await run('curl', ['-sfL', '-H', `X-Bootaction-Key: ${nodeKey}`, `${stack.url}/api/v1.0/bootactions/nodes/${hostname}/units`])).stdout).toBe('units');

      // The same object without the signature, the other tarball with this URL's signature, an
      // altered expiry, another key id: all refused.
      const u = new URL(location);
      await expectUnsignedRefused(stack.s3Endpoint, ctx.files_object);
      const other = new URL(u);
      other.pathname = other.pathname.replace(/units\.tar\.gz$/, 'files.tar.gz');
      expect((await status(other.toString())).status).toBe(403);
      const longer = new URL(u);
      longer.searchParams.set('X-Amz-Expires', '604800');
      expect((await status(longer.toString())).status).toBe(403);
      const otherKey = new URL(u);
      otherKey.searchParams.set('X-Amz-Credential', otherKey.searchParams.get('X-Amz-Credential')!.replace(/^S3RVER\//, 'ANYONE/'));
      expect((await status(otherKey.toString())).status).toBe(403);
      // And the object is intact.
      expect(await (await fetch(location)).text()).toBe('units');
    } finally {
      await stopStack();
    }
  });
});
