/**
 * SSH driver: runs commands on a host over SSH (ssh2, public-key auth only), for Commissaire's
 * host investigation, bootstrapping and cluster operations (upstream-apis §2.4–2.5).
 *
 * The private key is held in memory for the connection only: never written to disk, never put
 * in a message. The host key is pinned when the caller knows it (`hostKeySha256`) and reported
 * (`SHA256:…`, as `ssh-keygen -l` prints it) when it does not, so the first contact can record
 * it and later ones can pin it.
 *
 * @example
 * const ssh = await SshClient.connect({ address: '10.1.2.3', username: 'root', privateKey });
 * try {
 *   const { exit_code, stdout } = await ssh.run('uname -a');
 * } finally {
 *   ssh.close();
 * }
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:os';
import ssh2, { type ClientChannel, type ParsedKey } from 'ssh2';

// ssh2 is CommonJS: Node's ESM loader sees its exports only through the default import.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;

export interface SshTarget {
  /** IPv4, IPv6 (bare or in brackets) or a host name. */
  address: string;
  port?: number;
  username: string;
  /** PEM or OpenSSH private key text, unencrypted. */
  privateKey: string;
  /** Expected host key fingerprint, `SHA256:<base64>` (the prefix and `=` padding are optional). */
  hostKeySha256?: string;
}

export interface SshOptions {
  /** TCP connect + key exchange + authentication. */
  connectTimeoutMs?: number;
  /** Default bound for one command. */
  commandTimeoutMs?: number;
  /** Captured stdout and stderr are each cut to their last this many bytes. */
  maxOutputBytes?: number;
}

export interface CommandResult {
  /** The remote exit status; 128 + n when killed by signal n, 255 when none was reported. */
  exit_code: number;
  stdout: string;
  stderr: string;
  /** Set when the command was killed by a signal (`TERM`, `KILL`, …). */
  signal?: string;
  /** True when stdout or stderr was longer than `maxOutputBytes` and only its tail is kept. */
  truncated?: boolean;
}

/**
 * Why SSH failed: `unreachable` and `timeout` may be retried; `auth`, `host_key`, `invalid`
 * (bad input, e.g. an unparseable key) and `protocol` may not.
 */
export type SshErrorCode = 'unreachable' | 'auth' | 'host_key' | 'timeout' | 'invalid' | 'protocol';

export class SshError extends Error {
  constructor(
    readonly code: SshErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SshError';
  }

  get retryable(): boolean {
    return this.code === 'unreachable' || this.code === 'timeout';
  }
}

const DEFAULTS = { connectTimeoutMs: 20_000, commandTimeoutMs: 600_000, maxOutputBytes: 64 * 1024 };

/** `SHA256:<unpadded base64>` of a host key blob, as OpenSSH prints it. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Normal form of a pinned fingerprint: the `SHA256:` prefix added if missing, padding removed. */
export function normalizeFingerprint(pin: string): string {
  const bare = pin.trim().replace(/^SHA256:/i, '').replace(/=+$/, '');
  return `SHA256:${bare}`;
}

/** The address without IPv6 brackets, as a socket wants it. */
export function bareAddress(address: string): string {
  const m = /^\[(.*)\]$/.exec(address.trim());
  return m ? m[1]! : address.trim();
}

/** `host:port`, with brackets around IPv6 literals, for messages. */
function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A connected, authenticated SSH session; commands run one after another on it. */
export class SshClient {
  /** The server's host key fingerprint, `SHA256:…`. */
  readonly hostKeySha256: string;
  private broken: SshError | undefined;
  private closed = false;

  private constructor(
    private readonly conn: Client,
    private readonly where: string,
    hostKeySha256: string,
    private readonly options: Required<SshOptions>,
  ) {
    this.hostKeySha256 = hostKeySha256;
    conn.on('error', (err: Error & { level?: string }) => {
      this.broken ??= new SshError(err.level === 'client-timeout' ? 'timeout' : 'unreachable', `SSH connection to ${where} failed: ${err.message}`);
    });
    conn.on('close', () => {
      this.broken ??= new SshError('unreachable', `SSH connection to ${where} closed`);
    });
  }

  /** Connects and authenticates with the key; refuses a host key other than the pinned one. */
  static async connect(target: SshTarget, options: SshOptions = {}): Promise<SshClient> {
    const opts = { ...DEFAULTS, ...options };
    const host = bareAddress(target.address);
    const port = target.port ?? 22;
    const where = endpoint(host, port);
    if (!host) throw new SshError('invalid', 'the SSH address is empty');
    if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new SshError('invalid', `SSH port ${port} is not a TCP port`);
    // Parsed here so a bad key is a clear input error; ssh2's own messages name no key material.
    // (An OpenSSH key file may hold several keys, which ssh2 returns as an array.)
    const parsed = utils.parseKey(target.privateKey) as ParsedKey | ParsedKey[] | Error;
    if (parsed instanceof Error) throw new SshError('invalid', `the SSH private key cannot be used: ${parsed.message}`);
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!first?.isPrivateKey()) {
      throw new SshError('invalid', 'the SSH private key is not a private key');
    }
    const pin = target.hostKeySha256 ? normalizeFingerprint(target.hostKeySha256) : undefined;

    const conn = new Client();
    let presented: string | undefined;
    return new Promise<SshClient>((resolve, reject) => {
      let settled = false;
      const fail = (err: SshError) => {
        if (settled) return;
        settled = true;
        conn.end();
        conn.destroy();
        reject(err);
      };
      conn.once('ready', () => {
        if (settled) return;
        settled = true;
        resolve(new SshClient(conn, where, presented!, opts));
      });
      conn.on('error', (err: Error & { level?: string; code?: string }) => {
        fail(mapConnectError(err, { where, username: target.username, presented, pin, timeoutMs: opts.connectTimeoutMs }));
      });
      conn.once('close', () => fail(new SshError('unreachable', `SSH connection to ${where} closed before authentication`)));
      try {
        conn.connect({
          host,
          port,
          username: target.username,
          privateKey: target.privateKey,
          readyTimeout: opts.connectTimeoutMs,
          // Only the key: no agent, no password, no keyboard-interactive prompts.
          tryKeyboard: false,
          keepaliveInterval: 15_000,
          keepaliveCountMax: 4,
          hostVerifier: (key: Buffer) => {
            presented = fingerprint(key);
            return pin === undefined || pin === presented;
          },
        });
      } catch (err) {
        fail(new SshError('invalid', `cannot connect to ${where}: ${(err as Error).message}`));
      }
    });
  }

  /**
   * Runs one command (through the user's login shell, as `ssh host command` does) and returns
   * its exit status and output. A command still running after the timeout is signalled, the
   * session is closed and an `SshError('timeout')` thrown.
   */
  async run(command: string, timeoutMs = this.options.commandTimeoutMs): Promise<CommandResult> {
    if (this.closed) throw new SshError('protocol', `the SSH session to ${this.where} is closed`);
    if (this.broken) throw this.broken;
    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      try {
        this.conn.exec(command, (err, ch) => (err ? reject(this.broken ?? new SshError('protocol', `${this.where} refused to run a command: ${err.message}`)) : resolve(ch)));
      } catch (err) {
        reject(this.broken ?? new SshError('unreachable', `SSH connection to ${this.where} lost: ${(err as Error).message}`));
      }
    });
    const stdout = new TailBuffer(this.options.maxOutputBytes);
    const stderr = new TailBuffer(this.options.maxOutputBytes);
    channel.on('data', (b: Buffer) => stdout.push(b));
    channel.stderr.on('data', (b: Buffer) => stderr.push(b));
    return new Promise<CommandResult>((resolve, reject) => {
      let code: number | null | undefined;
      let signal: string | undefined;
      channel.on('exit', (c: number | null, s?: string) => {
        code = c;
        // ssh2 passes the protocol's signal name ('TERM') with a 'SIG' prefix added.
        signal = s ? s.replace(/^SIG/, '') : undefined;
      });
      const timer = setTimeout(() => {
        // Best effort: servers may ignore the signal request, so the whole session goes too.
        try {
          channel.signal('KILL');
        } catch {
          // the channel may be gone already
        }
        this.close();
        reject(new SshError('timeout', `command on ${this.where} still running after ${(timeoutMs / 1000).toFixed(1)} s: ${clip(command, 200)}`));
      }, timeoutMs);
      const onConnClose = () => {
        clearTimeout(timer);
        reject(this.broken ?? new SshError('unreachable', `SSH connection to ${this.where} lost during a command`));
      };
      this.conn.once('close', onConnClose);
      channel.on('close', () => {
        clearTimeout(timer);
        this.conn.off('close', onConnClose);
        if (code === undefined && signal === undefined && this.broken) return reject(this.broken);
        resolve({
          exit_code: typeof code === 'number' ? code : signal ? 128 + signalNumber(signal) : 255,
          stdout: stdout.text(),
          stderr: stderr.text(),
          ...(signal ? { signal } : {}),
          ...(stdout.truncated || stderr.truncated ? { truncated: true } : {}),
        });
      });
    });
  }

  /** Runs the commands in order and stops after the first with a non-zero exit status. */
  async runAll(commands: readonly string[], timeoutMs?: number): Promise<Array<CommandResult & { command: string }>> {
    const results: Array<CommandResult & { command: string }> = [];
    for (const command of commands) {
      const r = await this.run(command, timeoutMs);
      results.push({ command, ...r });
      if (r.exit_code !== 0) break;
    }
    return results;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.end();
    // end() waits for the server; a dead peer must not keep the socket (and the process) alive.
    setTimeout(() => this.conn.destroy(), 2000).unref();
  }
}

/** Connects, hands the session to `fn`, and always closes it. */
export async function withSsh<T>(target: SshTarget, options: SshOptions, fn: (ssh: SshClient) => Promise<T>): Promise<T> {
  const ssh = await SshClient.connect(target, options);
  try {
    return await fn(ssh);
  } finally {
    ssh.close();
  }
}

function mapConnectError(
  err: Error & { level?: string; code?: string },
  ctx: { where: string; username: string; presented: string | undefined; pin: string | undefined; timeoutMs: number },
): SshError {
  const { where } = ctx;
  if (ctx.pin !== undefined && ctx.presented !== undefined && ctx.presented !== ctx.pin) {
    return new SshError('host_key', `host key mismatch at ${where}: the server presented ${ctx.presented}, expected ${ctx.pin}; refusing to connect`);
  }
  if (err.level === 'client-authentication') {
    return new SshError('auth', `SSH authentication as ${ctx.username} at ${where} failed: the server refused the private key`);
  }
  if (err.level === 'client-timeout') {
    return new SshError('timeout', `no SSH session with ${where} within ${(ctx.timeoutMs / 1000).toFixed(1)} s (connect, key exchange and authentication)`);
  }
  switch (err.code) {
    case 'ECONNREFUSED':
      return new SshError('unreachable', `connection to ${where} refused: no SSH server is listening there`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new SshError('unreachable', `${where} is unreachable (${err.code})`);
    case 'ETIMEDOUT':
      return new SshError('timeout', `connecting to ${where} timed out`);
    case 'ECONNRESET':
    case 'EPIPE':
      return new SshError('unreachable', `${where} closed the connection during the SSH handshake (${err.code})`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new SshError('unreachable', `cannot resolve ${where} (${err.code})`);
  }
  return new SshError('protocol', `SSH with ${where} failed: ${err.message}`);
}

function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[`SIG${name}`] ?? 127;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Keeps the last `max` bytes of a stream. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly max: number) {}

  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max) {
      const over = this.size - this.max;
      const head = this.chunks[0]!;
      this.truncated = true;
      if (head.length <= over) {
        this.chunks.shift();
        this.size -= head.length;
      } else {
        this.chunks[0] = head.subarray(over);
        this.size -= over;
      }
    }
  }

  text(): string {
    // A cut may split a UTF-8 sequence at the start; decoding turns that into U+FFFD.
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
