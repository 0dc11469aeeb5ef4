import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNodeTarballs, buildTarball, type TarFile } from '../../layers/core/drydock/bootactions/index.ts';

const run = promisify(execFile);
/** GNU tar, with listings in UTC. */
const tar = (...args: string[]) => run('tar', args, { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' } });

const MTIME = new Date('2024-05-01T12:00:00Z');
const enc = (s: string) => new TextEncoder().encode(s);

const LONG_SPLITTABLE = `/${'a'.repeat(60)}/${'b'.repeat(80)}/${'c'.repeat(90)}.conf`; // 236 bytes: prefix + name
const LONG_UNSPLITTABLE = `/opt/${'d'.repeat(120)}`; // a 120-byte last component: PAX
const FILES: TarFile[] = [
  { path: '/etc/systemd/system/agent.service', mode: 0o444, data: enc('[Unit]\nDescription=agent\n') },
  { path: '/var/tmp/hello.sh', mode: 0o555, data: enc("#!/bin/bash\necho 'Hello World!'\n") },
  { path: '/etc/slipway/key', mode: 0o600, data: enc('secret\n') },
  { path: '/etc/slipway/empty', mode: 0o640, data: new Uint8Array() },
  { path: '/usr/local/bin/blob', mode: 0o755, data: Uint8Array.from({ length: 1500 }, (_, i) => (i * 7) % 256) },
  { path: '/opt/ünïcödé/fïle.txt', mode: 0o644, data: enc('utf-8 name\n') },
  { path: LONG_SPLITTABLE, mode: 0o600, data: enc('long\n') },
  { path: LONG_UNSPLITTABLE, mode: 0o700, data: enc('pax\n') },
];

let dir: string;
let archive: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slipway-tarball-'));
  archive = join(dir, 'node01-file.tar.gz');
  await writeFile(archive, buildTarball(FILES, { mtime: MTIME }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface RawHeader {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  magic: string;
  uname: string;
  gname: string;
  checksumOk: boolean;
}

/** Walks the tar blocks ourselves, to check what GNU tar's listing does not show. */
function rawHeaders(tgz: Buffer): { headers: RawHeader[]; length: number } {
  const tarBytes = gunzipSync(tgz);
  const headers: RawHeader[] = [];
  const str = (o: number, n: number) => tarBytes.toString('utf8', o, o + n).replace(/\0.*$/s, '');
  const oct = (o: number, n: number) => Number.parseInt(str(o, n).trim() || '0', 8);
  for (let off = 0; off + 512 <= tarBytes.length; ) {
    const block = tarBytes.subarray(off, off + 512);
    if (block.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    const h: RawHeader = {
      name: str(off, 100),
      prefix: str(off + 345, 155),
      mode: oct(off + 100, 8),
      uid: oct(off + 108, 8),
      gid: oct(off + 116, 8),
      size: oct(off + 124, 12),
      mtime: oct(off + 136, 12),
      type: String.fromCharCode(block[156] as number),
      magic: tarBytes.toString('latin1', off + 257, off + 265),
      uname: str(off + 265, 32),
      gname: str(off + 297, 32),
      checksumOk: oct(off + 148, 8) === sum,
    };
    headers.push(h);
    off += 512 + Math.ceil(h.size / 512) * 512;
  }
  return { headers, length: tarBytes.length };
}

describe('buildTarball, read by GNU tar', () => {
  it('lists one regular file per asset: absolute names, octal modes, 0/0 owners, size and mtime', async () => {
    const { stdout } = await tar('-tvzf', archive, '--full-time');
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(FILES.length);
    const modeString = (m: number) =>
      `-${[6, 3, 0].map((s) => `${m & (4 << s) ? 'r' : '-'}${m & (2 << s) ? 'w' : '-'}${m & (1 << s) ? 'x' : '-'}`).join('')}`;
    lines.forEach((line, i) => {
      const f = FILES[i] as TarFile;
      // Empty uname/gname (as upstream) show as the numeric ids.
      const [perms, owners, size, date, time, ...name] = line.split(/ +/);
      expect({ perms, owners, size: Number(size), when: `${date} ${time}`, name: name.join(' ') }).toEqual({
        perms: modeString(f.mode),
        owners: '0/0',
        size: f.data.length,
        when: '2024-05-01 12:00:00',
        name: f.path,
      });
    });
  });

  it('has no directory entries', async () => {
    const { stdout } = await tar('-tzf', archive);
    const names = stdout.trimEnd().split('\n');
    expect(names).toEqual(FILES.map((f) => f.path));
    expect(names.filter((n) => n.endsWith('/'))).toEqual([]);
    expect(rawHeaders(buildTarball(FILES)).headers.map((h) => h.type)).toEqual(['0', '0', '0', '0', '0', '0', '0', 'x', '0']);
  });

  it('extracts with -P to the absolute paths (relocated into a temp dir), with modes and contents', async () => {
    const root = join(dir, 'root');
    // -P keeps the leading '/', --transform moves the root into our temp dir, -p keeps modes for non-root.
    await tar('-xPpzf', archive, '--transform', `s|^/|${root}/|`);
    const isRoot = process.getuid?.() === 0;
    for (const f of FILES) {
      const target = join(root, f.path);
      const st = await stat(target);
      expect(st.isFile(), f.path).toBe(true);
      expect(st.mode & 0o7777, f.path).toBe(f.mode);
      expect(st.mtime.getTime(), f.path).toBe(MTIME.getTime());
      if (isRoot) expect([st.uid, st.gid], f.path).toEqual([0, 0]);
      expect(new Uint8Array(await readFile(target)), f.path).toEqual(f.data);
    }
    const all = (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
    expect(all).toHaveLength(FILES.length);
  });

  it('writes POSIX ustar headers: root ids, empty owner names, valid checksums, prefix split and PAX for long paths', () => {
    const { headers, length } = rawHeaders(buildTarball(FILES, { mtime: MTIME }));
    for (const h of headers) {
      expect(h).toMatchObject({ uid: 0, gid: 0, uname: '', gname: '', magic: 'ustar\u000000', checksumOk: true, mtime: MTIME.getTime() / 1000 });
    }
    const split = headers[6] as RawHeader;
    expect(`${split.prefix}/${split.name}`).toBe(LONG_SPLITTABLE);
    expect(split.prefix.startsWith('/')).toBe(true);
    expect((headers[7] as RawHeader).name).toBe('././@PaxHeader');
    expect((headers[8] as RawHeader).name).toBe('d'.repeat(100)); // a relative fallback name for readers without PAX
    expect(length % 10240).toBe(0);
  });

  it('gives a valid empty archive without files', async () => {
    const empty = join(dir, 'empty.tar.gz');
    await writeFile(empty, buildTarball([]));
    const { stdout, stderr } = await tar('-tvzf', empty);
    expect([stdout, stderr]).toEqual(['', '']);
    expect(gunzipSync(buildTarball([]))).toEqual(Buffer.alloc(10240));
  });

  it('is deterministic (gzip header without a time) and mtime defaults to 0, as upstream', () => {
    const a = buildTarball(FILES, { mtime: MTIME });
    expect(buildTarball(FILES, { mtime: MTIME }).equals(a)).toBe(true);
    expect(a.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(rawHeaders(buildTarball(FILES.slice(0, 1))).headers[0]?.mtime).toBe(0);
    expect(rawHeaders(buildTarball(FILES.slice(0, 1), { mtime: 1714564800.9 })).headers[0]?.mtime).toBe(1714564800);
  });

  it('refuses paths and modes a tar member cannot have', () => {
    for (const path of ['', '/etc/dir/', '/etc/a\u0000b']) {
      expect(() => buildTarball([{ path, mode: 0o600, data: new Uint8Array() }]), JSON.stringify(path)).toThrow(RangeError);
    }
    for (const mode of [-1, 0o10000, 1.5]) expect(() => buildTarball([{ path: '/x', mode, data: new Uint8Array() }])).toThrow(RangeError);
  });
});

describe('buildNodeTarballs', () => {
  it('puts units and files in separate archives and pkg_list in neither', async () => {
    const { units, files } = buildNodeTarballs(
      [
        { type: 'unit', path: '/lib/systemd/system/hello.service', mode: 0o600, data: enc('[Unit]\n') },
        { type: 'pkg_list', packages: { docker: '17.03' } },
        { type: 'file', path: '/var/tmp/hello.sh', mode: 0o555, data: enc('echo\n') },
        { type: 'unit', path: '/etc/systemd/system/agent.service', mode: 0o444, data: enc('[Unit]\n') },
      ],
      { mtime: MTIME },
    );
    const list = async (tgz: Buffer, name: string) => {
      const path = join(dir, name);
      await writeFile(path, tgz);
      return (await tar('-tzf', path)).stdout.trimEnd().split('\n');
    };
    expect(await list(units, 'n-unit.tar.gz')).toEqual(['/lib/systemd/system/hello.service', '/etc/systemd/system/agent.service']);
    expect(await list(files, 'n-file.tar.gz')).toEqual(['/var/tmp/hello.sh']);
    expect(gunzipSync(buildNodeTarballs([{ type: 'pkg_list', packages: {} }]).units)).toEqual(Buffer.alloc(10240));
  });
});
