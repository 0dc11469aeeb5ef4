import { gzipSync } from 'node:zlib';
import type { RenderedAsset } from './render.ts';

/**
 * Bootdata tarballs (upstream-apis.md §1.6.3, §7 trap 4): a gzip'd tar with one regular-file
 * member per asset and nothing else. What matters to the node, which runs `tar -xPz` as root
 * and then `systemctl enable <basename>` for each unit:
 *
 * - member name = asset path verbatim, leading `/` included;
 * - mode = the asset's octal permissions (0600 default), uid = gid = 0;
 * - uname/gname empty, as upstream's `tarfile.TarInfo` leaves them, so GNU tar running as root
 *   falls back to the numeric ids (root) instead of looking names up;
 * - mtime = the caller's time (upstream leaves TarInfo's default, 0 = 1970);
 * - no directory entries: tar creates missing parents itself.
 *
 * NOTE: written with node:zlib rather than a tar package: the writer is ~100 lines, has no
 * dependencies and is byte-for-byte predictable (same input, same archive). Format: POSIX ustar
 * (upstream writes GNU format; GNU tar, busybox and Python read both). A path over 100 bytes is
 * split into ustar's prefix/name fields; one that cannot be split gets a PAX `path` record.
 */

export interface TarFile {
  /** Member name, kept verbatim (absolute paths keep their leading `/`). */
  path: string;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  data: Uint8Array;
}

export interface TarOptions {
  /** Modification time of every member: a Date or Unix seconds. Default 0, as upstream. */
  mtime?: Date | number;
}

const BLOCK = 512;
/** Tar writers pad archives to 20 blocks; GNU tar and Python's tarfile both do. */
const RECORD = 20 * BLOCK;
const MAX_OCTAL_11 = 8 ** 11 - 1;

function writeString(buf: Buffer, offset: number, length: number, value: Buffer | string): void {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (bytes.length > length) throw new RangeError(`tar header field of ${length} bytes cannot hold ${bytes.length}`);
  bytes.copy(buf, offset);
}

/** Zero-padded octal digits filling all but the last byte of the field, then NUL. */
function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8).padStart(length - 1, '0');
  if (digits.length > length - 1) throw new RangeError(`${value} does not fit a ${length}-byte tar field`);
  buf.write(`${digits}\0`, offset, 'latin1');
}

interface HeaderFields {
  name: Buffer;
  prefix: Buffer;
  mode: number;
  size: number;
  mtime: number;
  type: '0' | 'x';
}

function header(h: HeaderFields): Buffer {
  const buf = Buffer.alloc(BLOCK);
  writeString(buf, 0, 100, h.name);
  writeOctal(buf, 100, 8, h.mode);
  writeOctal(buf, 108, 8, 0); // uid
  writeOctal(buf, 116, 8, 0); // gid
  writeOctal(buf, 124, 12, h.size);
  writeOctal(buf, 136, 12, h.mtime);
  buf.write(' '.repeat(8), 148, 'latin1'); // checksum counts as spaces while summing
  buf.write(h.type, 156, 'latin1');
  buf.write('ustar\x0000', 257, 'latin1'); // magic "ustar\0", version "00"
  // uname (265) and gname (297) stay empty, as upstream; devmajor/devminor zero.
  writeOctal(buf, 329, 8, 0);
  writeOctal(buf, 337, 8, 0);
  writeString(buf, 345, 155, h.prefix);
  let sum = 0;
  for (const b of buf) sum += b;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return buf;
}

/**
 * Where to cut a long path into ustar's prefix (≤155 bytes) and name (≤100 bytes) at a `/`, or
 * undefined when no cut works. The cut is never the leading `/` itself: an empty prefix would
 * turn `/etc/x` into `etc/x`.
 */
function splitPath(path: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  for (let i = Math.min(155, path.length - 1); i >= 1; i--) {
    if (path[i] !== 0x2f) continue;
    const name = path.subarray(i + 1);
    return name.length <= 100 && name.length > 0 ? { prefix: path.subarray(0, i), name } : undefined;
  }
  return undefined;
}

/** One PAX extended-header record: "<length> <key>=<value>\n", length counting itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return Buffer.concat([Buffer.from(String(length)), body]);
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

function checkFile(f: TarFile): Buffer {
  if (typeof f.path !== 'string' || f.path === '' || f.path.includes('\0') || f.path.endsWith('/')) {
    throw new RangeError(`Invalid tar member path ${JSON.stringify(f.path)}`);
  }
  if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) throw new RangeError(`Invalid mode for ${f.path}: ${f.mode}`);
  if (f.data.length > MAX_OCTAL_11) throw new RangeError(`${f.path} is too large for a tar member`);
  return Buffer.from(f.path, 'utf8');
}

/**
 * A gzip'd tar of `files`, in the given order: regular files only, uid/gid 0, no directories.
 * An empty list gives a valid empty archive (§1.6.3).
 *
 * @example
 * const tgz = buildTarball([{ path: '/etc/systemd/system/agent.service', mode: 0o444, data }], { mtime: new Date() });
 * // on the node: tar -xPzf node01-unit.tar.gz
 */
export function buildTarball(files: readonly TarFile[], options: TarOptions = {}): Buffer {
  return gzipSync(buildTar(files, options), { level: 9 });
}

/**
 * The same archive as buildTarball, uncompressed (a plain ustar stream): for readers that
 * cannot count on gzip, e.g. the agent's config drive, which the ramdisk pipes into busybox tar.
 */
export function buildTar(files: readonly TarFile[], options: TarOptions = {}): Buffer {
  const m = options.mtime ?? 0;
  const mtime = Math.max(0, Math.floor(m instanceof Date ? m.getTime() / 1000 : m));
  const parts: Buffer[] = [];
  for (const f of files) {
    const path = checkFile(f);
    let name: Buffer = path;
    let prefix: Buffer = Buffer.alloc(0);
    if (path.length > 100) {
      const split = splitPath(path);
      if (split) {
        ({ name, prefix } = split);
      } else {
        const pax = paxRecord('path', path);
        parts.push(header({ name: Buffer.from('././@PaxHeader'), prefix, mode: 0o644, size: pax.length, mtime, type: 'x' }), pax, padding(pax.length));
        // Readers without PAX see only a relative basename, never a wrong absolute path.
        const base = path.subarray(path.lastIndexOf(0x2f) + 1);
        name = base.subarray(Math.max(0, base.length - 100));
      }
    }
    parts.push(header({ name, prefix, mode: f.mode, size: f.data.length, mtime, type: '0' }), Buffer.from(f.data), padding(f.data.length));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  const size = parts.reduce((n, p) => n + p.length, 0);
  parts.push(Buffer.alloc((RECORD - (size % RECORD)) % RECORD));
  return Buffer.concat(parts);
}

/**
 * The node's two bootdata tarballs: `units` holds the `unit` assets, `files` the `file` assets;
 * `pkg_list` assets are in neither (they go to cloud-init, see `mergePackageLists`).
 */
export function buildNodeTarballs(rendered: readonly RenderedAsset[], options: TarOptions = {}): { units: Buffer; files: Buffer } {
  const of = (type: 'unit' | 'file') =>
    rendered.flatMap((r) => (r.type === type ? [{ path: r.path, mode: r.mode, data: r.data }] : []));
  return { units: buildTarball(of('unit'), options), files: buildTarball(of('file'), options) };
}
