import { randomBytes } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as z from 'zod';
import { log } from '#core/util/log.ts';
import type { ImageCache } from './images.ts';

/**
 * The site boot service (DESIGN §7a): an HTTP server the agent runs for the site's booting
 * nodes — never for the cloud (the agent still only polls outward). A node's iPXE (chained by
 * the site's DHCP, see agent/dnsmasq.ts) fetches `GET /boot/{mac}.ipxe`; the answer is the
 * script for that node's current step:
 *
 *   - a MAC with a pending ramdisk step (`inspect`, `clean` or `deploy`), or any unknown MAC
 *     while a discovery (a step registered with no MACs) is pending: boot the Slipway ramdisk
 *     with `slipway.step=<step>` and a per-registration callback URL (a deploy adds
 *     `slipway.deploy=<u>/deploy/<token>`, where its instructions are);
 *   - any other MAC: `exit`, so the firmware goes on to the next boot device (the local disk).
 *
 * `GET /boot/kernel` and `GET /boot/initramfs` stream the ramdisk files; `POST /callback/{token}`
 * takes the ramdisk's JSON report (at most 64 KiB), checked against the schema of the step the
 * token was issued for. The token is a random secret per registration: a report completes only
 * its own step, once (204; 404 for an unknown or used token).
 *
 * A pending deploy registration also answers `GET /deploy/{token}` (its instructions: key=value
 * lines, deploy contract §2) and `GET /configdrive/{token}.tar` (its config drive); both 404
 * once it reported or closed. `GET`/`HEAD /images/{sha256}` streams an image from the agent's
 * image cache (agent/images.ts), only one this process fetched or re-hashed and found matching.
 *
 * Steps for known MACs run in parallel; at most one discovery is pending at a time, whatever
 * its step (the others wait their turn in register()), since an unknown MAC cannot be told apart.
 */

export const MAX_REPORT_BYTES = 64 * 1024;
const MAC_RE = /^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

/** `aa:bb:cc:dd:ee:ff` from `AA-BB-…`, `aabbcc…` or `aa:bb:…`; null when not a MAC. */
export function normalizeMac(text: string): string | null {
  const t = text.trim();
  if (!MAC_RE.test(t)) return null;
  const hex = t.replace(/[:-]/g, '').toLowerCase();
  return hex.match(/../g)!.join(':');
}

/** The MAC in a BOOTIF= value: `01-aa-bb-…` (PXELINUX: hardware type 1) or a plain MAC. */
export function bootifMac(value: string | null | undefined): string | null {
  if (!value) return null;
  const v = value.trim();
  const m = /^01-([0-9a-f]{2}(-[0-9a-f]{2}){5})$/i.exec(v);
  return normalizeMac(m ? m[1]! : v);
}

/** The ramdisk's inspection report (ramdisk/init); unknown fields are dropped. */
export const InspectReport = z.object({
  step: z.literal('inspect'),
  cpus: z.number().int().min(1).max(65_536),
  cpu_arch: z.string().min(1).max(64),
  memory_kib: z.number().int().min(0).optional(),
  memory_mb: z.number().int().min(0).max(1 << 30),
  disks: z.array(z.strictObject({ name: z.string().min(1).max(256), size: z.number().int().min(0) })).max(1024),
  interfaces: z.array(z.strictObject({ name: z.string().min(1).max(64), mac_address: z.string().max(64) })).max(1024),
  /** BOOTIF= from the kernel command line (the MAC iPXE booted from), when the ramdisk saw one. */
  bootif: z.string().max(64).nullable().optional(),
});
export type InspectReport = z.infer<typeof InspectReport>;

/** The ramdisk's cleaning report (ramdisk/init, `slipway.step=clean`): every disk it erased and verified. */
export const CleanReport = z.object({
  step: z.literal('clean'),
  disks: z
    .array(
      z.strictObject({
        name: z.string().min(1).max(256),
        size: z.number().int().min(0),
        /** `zero`: written with zeros; `discard`: zeroed by the device (`blkdiscard -z`). */
        method: z.enum(['zero', 'discard']),
        /** How many bytes were read back as zeros after the erase (a sample of the disk). */
        verified_bytes: z.number().int().min(0),
      }),
    )
    .max(1024),
  bootif: z.string().max(64).nullable().optional(),
});
export type CleanReport = z.infer<typeof CleanReport>;

/**
 * The ramdisk's deploy report (`slipway.step=deploy`, deploy contract §3.5): the image written to
 * `root_device`, read back and matched (`written_bytes`, its size), and the config drive
 * extracted into `root_filesystem`.
 */
export const DeployReport = z.object({
  step: z.literal('deploy'),
  root_device: z.string().min(1).max(256),
  root_filesystem: z.string().min(1).max(256),
  image_sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  written_bytes: z.number().int().min(0),
  write_seconds: z.number().min(0),
  configdrive: z.literal('nocloud'),
  bootif: z.string().max(64).nullable().optional(),
});
export type DeployReport = z.infer<typeof DeployReport>;

/** What a ramdisk step reports when it failed (e.g. `erasing /dev/vdb failed: …`); the job fails with it. */
export const StepErrorReport = z.strictObject({
  step: z.enum(['inspect', 'clean', 'deploy']),
  error: z.string().min(1).max(4000),
});
export type StepErrorReport = z.infer<typeof StepErrorReport>;

/** The steps the ramdisk runs, each with its report. */
export type RamdiskStep = 'inspect' | 'clean' | 'deploy';
export interface StepReports {
  inspect: InspectReport;
  clean: CleanReport;
  deploy: DeployReport;
}
const REPORT_SCHEMAS: { [S in RamdiskStep]: z.ZodType<StepReports[S]> } = { inspect: InspectReport, clean: CleanReport, deploy: DeployReport };

/** What a deploy registration hands the ramdisk (`GET /deploy/{token}`, `GET /configdrive/{token}.tar`). */
export interface DeployOptions {
  /** The image, already in the service's image cache (served at `/images/<sha256>`). */
  image: { sha256: string; size: number };
  /** The config drive: an uncompressed ustar (agent/configdrive.ts). */
  configdrive: Buffer;
  /** A whole disk, e.g. `/dev/vda`; absent: the ramdisk picks. */
  rootDevice?: string;
}

/** Largest config drive a registration takes (it is held in memory until the step ends). */
export const MAX_CONFIGDRIVE_BYTES = 4 * 1024 * 1024;
const ROOT_DEVICE_RE = /^\/dev\/[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;

/** A completed step: the report (or the step's error), and the MACs that fetched its script. */
export interface StepResult<S extends RamdiskStep = RamdiskStep> {
  report: StepReports[S] | StepErrorReport;
  fetchedBy: string[];
}

/** A completed inspection. */
export interface InspectionResult {
  report: InspectReport;
  fetchedBy: string[];
}

/** The step's own report from a result; RamdiskStepError with the ramdisk's message for its error form. */
export function stepReport<S extends RamdiskStep>(step: S, r: { report: StepReports[S] | StepErrorReport }): StepReports[S] {
  if ('error' in r.report) throw new RamdiskStepError(step, r.report.error);
  return r.report;
}

/** A ramdisk step that reported an error: the message is the ramdisk's. */
export class RamdiskStepError extends Error {
  constructor(
    readonly step: RamdiskStep,
    message: string,
  ) {
    super(message);
    this.name = 'RamdiskStepError';
  }
}

const STEP_NOUN: Record<RamdiskStep, string> = { inspect: 'inspection', clean: 'cleaning', deploy: 'deploy' };
const STEP_PARTICIPLE: Record<RamdiskStep, string> = { inspect: 'inspected', clean: 'cleaned', deploy: 'deployed' };

export class InspectionTimeout extends Error {
  constructor(
    readonly seconds: number,
    readonly fetchedBy: string[],
    readonly step: RamdiskStep = 'inspect',
  ) {
    super(
      fetchedBy.length > 0
        ? `${STEP_NOUN[step]} timed out after ${seconds} s: the node fetched its boot script (${fetchedBy.join(', ')}) but never reported (did the ramdisk boot and reach the agent's boot service?)`
        : `${STEP_NOUN[step]} timed out after ${seconds} s: the node never reported (does it boot from the network and reach the agent's boot service?)`,
    );
    this.name = 'InspectionTimeout';
  }
}

export interface NetbootOptions {
  /** Where to listen; port 0 picks a free one. */
  host: string;
  port: number;
  /** The URL nodes reach this service at (no trailing slash needed). */
  publicUrl: string;
  kernel: string;
  initramfs: string;
  /** Added to the ramdisk's kernel command line. */
  kernelArgs?: string;
  /** Told of every request served (for logs, timings and tests). */
  onEvent?: (event: NetbootEvent) => void;
  /** The agent's image cache: `/images/{sha256}` serves its verified files (absent: none). */
  images?: ImageCache;
}

export type NetbootEvent =
  | { kind: 'script'; mac: string; step: RamdiskStep | 'local' }
  /** `macs`: the registration's MACs, for files served per registration (instructions, config drive). */
  | { kind: 'file'; file: 'kernel' | 'initramfs' | 'image' | 'configdrive' | 'instructions'; status: number; macs?: readonly string[] }
  | { kind: 'report'; status: number; macs: readonly string[] };

/** A registered ramdisk step: wait for its report, then close it (always). */
export interface Inspection<S extends RamdiskStep = 'inspect'> {
  readonly token: string;
  readonly step: S;
  readonly macs: readonly string[];
  readonly discovery: boolean;
  /**
   * The report (the step's own, or its error form), or InspectionTimeout after timeoutMs;
   * rejects at once when closed.
   */
  wait(timeoutMs: number): Promise<StepResult<S>>;
  /** Unregisters it: its MACs boot local again and its token is void. Idempotent. */
  close(): void;
}

interface Pending {
  token: string;
  step: RamdiskStep;
  macs: string[];
  discovery: boolean;
  /** Unknown MAC a discovery is bound to (the first that fetched its script). */
  boundMac: string | null;
  fetchedBy: Set<string>;
  /** A deploy's instructions and config drive. */
  deploy: DeployOptions | null;
  result: StepResult | null;
  closed: boolean;
  settle: ((r: StepResult | Error) => void) | null;
}

export class NetbootService {
  private server: Server | null = null;
  private readonly byToken = new Map<string, Pending>();
  private readonly byMac = new Map<string, Pending>();
  private discovery: Pending | null = null;
  /** Discovery registrations waiting for the slot, in order. */
  private readonly discoveryQueue: (() => void)[] = [];
  private readonly publicUrl: string;
  private stopped = false;

  /** The image cache `/images/{sha256}` serves from (NetbootOptions.images). */
  get images(): ImageCache | undefined {
    return this.opts.images;
  }

  constructor(private readonly opts: NetbootOptions) {
    this.publicUrl = opts.publicUrl.replace(/\/+$/, '');
    if (!/^https?:\/\/[^\s]+$/.test(this.publicUrl)) throw new TypeError(`netboot public_url ${JSON.stringify(opts.publicUrl)} is not an http(s) URL`);
  }

  /** The bound address (after start()). */
  get address(): { host: string; port: number } {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error('the boot service is not listening');
    return { host: a.address, port: a.port };
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        log.warn('boot service request failed', { url: req.url, error: (err as Error).message });
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.destroy();
      });
    });
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    log.info('boot service listening', { ...this.address, public_url: this.publicUrl });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.stopped = true;
    for (const p of [...this.byToken.values()]) this.unregister(p, new Error('the boot service stopped'));
    // Discoveries waiting their turn: register() throws for them now.
    for (const wake of this.discoveryQueue.splice(0)) wake();
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  /**
   * Registers the ramdisk step `step` (default inspect) for `macs` (none: a discovery, which
   * first waits until no other discovery is pending). Throws when a MAC already has a step pending.
   * A deploy needs its DeployOptions (the image must be in the image cache by then).
   */
  async register(macsIn: readonly string[]): Promise<Inspection<'inspect'>>;
  async register<S extends 'inspect' | 'clean'>(macsIn: readonly string[], step: S): Promise<Inspection<S>>;
  async register(macsIn: readonly string[], step: 'deploy', deploy: DeployOptions): Promise<Inspection<'deploy'>>;
  async register(macsIn: readonly string[], step: RamdiskStep = 'inspect', deploy?: DeployOptions): Promise<Inspection<RamdiskStep>> {
    if (!Object.hasOwn(REPORT_SCHEMAS, step)) throw new TypeError(`unknown ramdisk step ${JSON.stringify(step)}`);
    if (step === 'deploy') checkDeploy(deploy);
    else if (deploy) throw new TypeError(`a ${step} registration takes no deploy options`);
    const macs = macsIn.map((m) => {
      const n = normalizeMac(m);
      if (!n) throw new TypeError(`${JSON.stringify(m)} is not a MAC address`);
      return n;
    });
    const discovery = macs.length === 0;
    const stopped = () => new Error('the boot service stopped');
    if (this.stopped) throw stopped();
    if (discovery) {
      while (this.discovery) {
        await new Promise<void>((r) => this.discoveryQueue.push(r));
        if (this.stopped) throw stopped();
      }
    } else {
      const busy = macs.filter((m) => this.byMac.has(m));
      if (busy.length > 0) throw new Error(`MAC ${busy.join(', ')} is already being ${STEP_PARTICIPLE[this.byMac.get(busy[0]!)!.step]}`);
    }
    const p: Pending = {
      token: randomBytes(24).toString('base64url'),
      step,
      macs: [...new Set(macs)],
      discovery,
      boundMac: null,
      fetchedBy: new Set(),
      deploy: step === 'deploy' ? deploy! : null,
      result: null,
      closed: false,
      settle: null,
    };
    this.byToken.set(p.token, p);
    for (const m of p.macs) this.byMac.set(m, p);
    if (discovery) this.discovery = p;
    return {
      token: p.token,
      step,
      macs: p.macs,
      discovery,
      wait: (timeoutMs) => this.wait(p, timeoutMs),
      close: () => this.unregister(p, new Error('the inspection was closed')),
    };
  }

  private wait(p: Pending, timeoutMs: number): Promise<StepResult> {
    if (p.result) return Promise.resolve(p.result);
    if (p.closed) return Promise.reject(new Error('the inspection was closed'));
    return new Promise<StepResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        p.settle = null;
        reject(new InspectionTimeout(Math.round(timeoutMs / 100) / 10, [...p.fetchedBy], p.step));
      }, timeoutMs);
      p.settle = (r) => {
        clearTimeout(timer);
        p.settle = null;
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
    });
  }

  private unregister(p: Pending, reason: Error): void {
    if (p.closed) return;
    p.closed = true;
    this.byToken.delete(p.token);
    for (const m of p.macs) if (this.byMac.get(m) === p) this.byMac.delete(m);
    if (this.discovery === p) {
      this.discovery = null;
      this.discoveryQueue.shift()?.();
    }
    p.settle?.(reason);
  }

  /** The iPXE script for a MAC (what GET /boot/{mac}.ipxe answers); records the fetch. */
  scriptFor(mac: string): string {
    return this.script(mac).body;
  }

  private script(mac: string): { body: string; step: RamdiskStep | 'local' } {
    let p = this.byMac.get(mac);
    if (!p && this.discovery && !this.discovery.result && (this.discovery.boundMac === null || this.discovery.boundMac === mac)) {
      p = this.discovery;
      p.boundMac = mac;
    }
    if (!p || p.result) return { body: '#!ipxe\n# Slipway: nothing to do for this machine: boot from its disk\nexit\n', step: 'local' };
    p.fetchedBy.add(mac);
    const u = this.publicUrl;
    const args = [
      `initrd=initramfs`,
      `slipway.callback=${u}/callback/${p.token}`,
      `slipway.step=${p.step}`,
      p.step === 'deploy' ? `slipway.deploy=${u}/deploy/${p.token}` : '',
      'BOOTIF=${mac}',
      this.opts.kernelArgs ?? '',
    ]
      .filter(Boolean)
      .join(' ');
    return { body: `#!ipxe\n# Slipway: ${p.step}\nkernel ${u}/boot/kernel ${args}\ninitrd --name initramfs ${u}/boot/initramfs\nboot\n`, step: p.step };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const script = /^\/boot\/([^/]+)\.ipxe$/.exec(path);
    if (script) {
      // GET only: a fetch is recorded (and binds a discovery), so nothing else may look.
      if (req.method !== 'GET') return send(res, 405, 'method not allowed\n', { Allow: 'GET' });
      const mac = normalizeMac(decodeURIComponent(script[1]!));
      if (!mac) return send(res, 400, 'not a MAC address\n');
      const { body, step } = this.script(mac);
      log.info('boot script served', { mac, step });
      this.opts.onEvent?.({ kind: 'script', mac, step });
      return send(res, 200, body, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    }
    if (path === '/boot/kernel' || path === '/boot/initramfs') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      const file = path === '/boot/kernel' ? 'kernel' : 'initramfs';
      const status = this.serveFile(req, res, file === 'kernel' ? this.opts.kernel : this.opts.initramfs);
      this.opts.onEvent?.({ kind: 'file', file, status });
      return;
    }
    const cb = /^\/callback\/([A-Za-z0-9_-]{1,128})$/.exec(path);
    if (cb) {
      if (req.method !== 'POST') return send(res, 405, 'method not allowed\n', { Allow: 'POST' });
      return this.callback(req, res, cb[1]!);
    }
    const instructions = /^\/deploy\/([A-Za-z0-9_-]{1,128})$/.exec(path);
    if (instructions) {
      if (req.method !== 'GET') return send(res, 405, 'method not allowed\n', { Allow: 'GET' });
      const p = this.pendingDeploy(instructions[1]!);
      const status = p ? 200 : 404;
      if (p) send(res, 200, this.instructions(p), { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      else send(res, 404, 'unknown or used deploy\n');
      log.info('deploy instructions requested', { macs: p?.macs ?? [], status });
      this.opts.onEvent?.({ kind: 'file', file: 'instructions', status, ...(p ? { macs: p.macs } : {}) });
      return;
    }
    const drive = /^\/configdrive\/([A-Za-z0-9_-]{1,128})\.tar$/.exec(path);
    if (drive) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      const p = this.pendingDeploy(drive[1]!);
      if (p) {
        const tar = p.deploy!.configdrive;
        res.writeHead(200, { 'Content-Type': 'application/x-tar', 'Content-Length': String(tar.length), 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : tar);
      } else send(res, 404, 'unknown or used deploy\n', {}, req.method === 'HEAD');
      this.opts.onEvent?.({ kind: 'file', file: 'configdrive', status: p ? 200 : 404, ...(p ? { macs: p.macs } : {}) });
      return;
    }
    const image = /^\/images\/([0-9a-f]{64})$/.exec(path);
    if (image) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      // Only a file this process hashed and matched: never bytes nobody checked.
      const cached = this.opts.images?.path(image[1]!);
      let status = 404;
      if (cached) status = this.serveFile(req, res, cached.path, 'image cache file vanished');
      else send(res, 404, 'no such image in the agent cache\n', {}, req.method === 'HEAD');
      log.info('image requested', { sha256: image[1], status, method: req.method });
      this.opts.onEvent?.({ kind: 'file', file: 'image', status });
      return;
    }
    return send(res, 404, 'not found\n');
  }

  /** The pending (not yet reported, not closed) deploy registration of a token. */
  private pendingDeploy(token: string): Pending | null {
    const p = this.byToken.get(token);
    return p && p.step === 'deploy' && p.deploy && !p.result && !p.closed ? p : null;
  }

  /** The deploy contract's §2 key=value lines. */
  private instructions(p: Pending): string {
    const d = p.deploy!;
    const u = this.publicUrl;
    return [
      `image_url=${u}/images/${d.image.sha256}`,
      `image_sha256=${d.image.sha256}`,
      `image_size=${d.image.size}`,
      `configdrive_url=${u}/configdrive/${p.token}.tar`,
      ...(d.rootDevice ? [`root_device=${d.rootDevice}`] : []),
      '',
    ].join('\n');
  }

  private serveFile(req: IncomingMessage, res: ServerResponse, file: string, missing = 'boot file missing (npm run ramdisk builds the ramdisk)'): number {
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      log.error(missing, { file });
      send(res, 404, 'boot file missing on the agent\n');
      return 404;
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size), 'Cache-Control': 'no-store' });
    if (req.method === 'HEAD') {
      res.end();
      return 200;
    }
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
    return 200;
  }

  private async callback(req: IncomingMessage, res: ServerResponse, token: string): Promise<void> {
    const p = this.byToken.get(token);
    if (!p || p.result) {
      req.resume();
      return send(res, 404, 'unknown or used callback\n', { Connection: 'close' });
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_REPORT_BYTES) {
      req.resume();
      return send(res, 413, `report larger than ${MAX_REPORT_BYTES} bytes\n`, { Connection: 'close' });
    }
    const chunks: Buffer[] = [];
    let total = 0;
    const tooLarge = await new Promise<boolean>((resolve, reject) => {
      req.on('data', (c: Buffer) => {
        total += c.length;
        if (total > MAX_REPORT_BYTES) {
          req.removeAllListeners('data');
          req.resume();
          resolve(true);
        } else chunks.push(c);
      });
      req.on('end', () => resolve(false));
      req.on('error', reject);
    });
    if (tooLarge) return send(res, 413, `report larger than ${MAX_REPORT_BYTES} bytes\n`, { Connection: 'close' });
    let json: unknown;
    try {
      json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return send(res, 400, 'the report is not JSON\n');
    }
    // The step's own report, or its error form ({step, error}) when the ramdisk says it failed.
    const isError = typeof json === 'object' && json !== null && 'error' in json;
    const parsed = isError ? StepErrorReport.safeParse(json) : REPORT_SCHEMAS[p.step].safeParse(json);
    if (!parsed.success) return send(res, 400, `invalid report: ${parsed.error.issues.map((x) => `${x.path.join('.') || 'report'}: ${x.message}`).join('; ')}\n`);
    if (parsed.data.step !== p.step) return send(res, 400, `invalid report: step: expected ${JSON.stringify(p.step)}, not ${JSON.stringify(parsed.data.step)}\n`);
    // Checked again: another report may have completed it while this body was read.
    if (p.result || p.closed) return send(res, 404, 'unknown or used callback\n');
    p.result = { report: parsed.data, fetchedBy: [...p.fetchedBy] };
    this.byToken.delete(token);
    log.info(`${p.step} report received`, { macs: p.macs, discovery: p.discovery, fetched_by: p.result.fetchedBy, ...(isError ? { error: (parsed.data as StepErrorReport).error } : {}) });
    p.settle?.(p.result);
    send(res, 204, '');
    this.opts.onEvent?.({ kind: 'report', status: 204, macs: p.macs });
  }
}

/** Refuses deploy options the ramdisk could not use (they become key=value lines). */
function checkDeploy(d: DeployOptions | undefined): asserts d is DeployOptions {
  if (!d) throw new TypeError('a deploy registration needs its image and config drive');
  if (!/^[0-9a-f]{64}$/.test(d.image.sha256)) throw new TypeError('deploy image sha256 must be 64 lower-case hex digits');
  if (!Number.isSafeInteger(d.image.size) || d.image.size <= 0) throw new TypeError(`deploy image size ${d.image.size} is not a positive integer`);
  if (!Buffer.isBuffer(d.configdrive) || d.configdrive.length === 0 || d.configdrive.length > MAX_CONFIGDRIVE_BYTES) {
    throw new TypeError(`the config drive must be 1 to ${MAX_CONFIGDRIVE_BYTES} bytes`);
  }
  if (d.rootDevice !== undefined && d.rootDevice !== '' && !ROOT_DEVICE_RE.test(d.rootDevice)) throw new TypeError(`root device ${JSON.stringify(d.rootDevice)} is not a /dev path`);
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}, headOnly = false): void {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(status, status === 204 ? headers : { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(buf.length), ...headers });
  res.end(status === 204 || headOnly ? undefined : buf);
}

/** The job's output from a report (sizes in bytes, MACs lower-case); throws for the error form. */
export function inspectionOutput(result: StepResult<'inspect'>): {
  cpus: number;
  cpu_arch: string;
  memory_mb: number;
  disks: { name: string; size: number }[];
  interfaces: { name: string; mac_address: string }[];
  boot_mac: string | null;
} {
  const r = { report: stepReport('inspect', result), fetchedBy: result.fetchedBy };
  const interfaces = r.report.interfaces.map((i) => ({ name: i.name, mac_address: normalizeMac(i.mac_address) ?? i.mac_address.toLowerCase() }));
  const own = new Set(interfaces.map((i) => i.mac_address));
  // The MAC that fetched the script (the reporting machine's own, when several fetched), else BOOTIF.
  const fetched = r.fetchedBy.find((m) => own.has(m)) ?? (r.fetchedBy.length === 1 ? r.fetchedBy[0]! : null);
  return {
    cpus: r.report.cpus,
    cpu_arch: r.report.cpu_arch,
    memory_mb: r.report.memory_mb,
    disks: r.report.disks.map((d) => ({ name: d.name, size: d.size })),
    interfaces,
    boot_mac: fetched ?? bootifMac(r.report.bootif),
  };
}

/** The `clean` job's output from a report: each erased disk, and the MAC the node booted from. */
export function cleaningOutput(result: StepResult<'clean'>): {
  disks: { name: string; size: number; method: 'zero' | 'discard'; verified_bytes: number }[];
  boot_mac: string | null;
} {
  const r = { report: stepReport('clean', result), fetchedBy: result.fetchedBy };
  // The report names no interfaces: BOOTIF when a fetching MAC, else the one MAC that fetched, else BOOTIF.
  const bootif = bootifMac(r.report.bootif);
  const fetched = bootif && r.fetchedBy.includes(bootif) ? bootif : r.fetchedBy.length === 1 ? r.fetchedBy[0]! : null;
  return {
    disks: r.report.disks.map((d) => ({ name: d.name, size: d.size, method: d.method, verified_bytes: d.verified_bytes })),
    boot_mac: fetched ?? bootif,
  };
}

/** The deploy step's report as the job's fields; throws RamdiskStepError for the error form. */
export function deployOutput(result: StepResult<'deploy'>): {
  root_device: string;
  root_filesystem: string;
  image_sha256: string;
  written_bytes: number;
  write_seconds: number;
  boot_mac: string | null;
} {
  const r = stepReport('deploy', result);
  // As for cleaning: the report names no interfaces.
  const bootif = bootifMac(r.bootif);
  const fetched = bootif && result.fetchedBy.includes(bootif) ? bootif : result.fetchedBy.length === 1 ? result.fetchedBy[0]! : null;
  return {
    root_device: r.root_device,
    root_filesystem: r.root_filesystem,
    image_sha256: r.image_sha256,
    written_bytes: r.written_bytes,
    write_seconds: r.write_seconds,
    boot_mac: fetched ?? bootif,
  };
}
