import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as z from 'zod';
import { API_IMAGE_SOURCE_RE, DEFAULT_IMAGE_URL_PREFIXES, normalizeUrlPrefix } from './images.ts';

/** Where `npm run ramdisk` puts the ramdisk (the netboot section's defaults). */
export const RAMDISK_DIR = resolve(import.meta.dirname, '..', '.cache/ramdisk');

/** Where the agent caches deploy images by default (netboot.image_cache_dir). */
export const IMAGE_CACHE_DIR = resolve(import.meta.dirname, '..', '.cache/agent-images');

/**
 * A catalog name (a design's `platform.image`): it names a cache entry and appears in errors and
 * logs, so it is bounded and printable; no `/`, so it can never be read as a path.
 */
export const ImageName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^/\u0000-\u001f\u007f]+$/, 'no "/" or control characters');

/** One image of the site's catalog: where to fetch it and the sha256 it must have. */
export const ImageSource = z.strictObject({
  /**
   * http(s) URL, `file:///absolute/path` on the agent's machine, or `api:<name>`: the deployment's
   * bucket (`images/<name>`, put there with any S3 client) through the agent's API, which
   * answers with a short-lived presigned URL (the agent holds no AWS credentials).
   */
  url: z
    .string()
    .max(4096)
    .refine((u) => {
      if (u.startsWith('api:')) return API_IMAGE_SOURCE_RE.test(u);
      try {
        const url = new URL(u);
        // Spelled out: WHATWG URL parsing would read `file:x` as file:///x and `http:///x` as http://x/.
        if (url.protocol === 'file:') return u.startsWith('file:///') && url.host === '' && url.pathname.length > 1;
        return /^https?:\/\/[^/]/i.test(u) && url.host !== '';
      } catch {
        return false;
      }
    }, "an http(s) URL, file:///absolute/path or api:<name> (1-200 letters, digits, '.', '_' or '-', not starting with '.')"),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, '64 hex digits')
    .transform((h) => h.toLowerCase()),
});
export type ImageSource = z.infer<typeof ImageSource>;

/**
 * The site boot service (agent/netboot.ts): HTTP for the site's booting nodes only. `public_url`
 * is how nodes reach it (the agent's LAN address at a site); `listen` is where it binds.
 */
export const NetbootConfig = z.strictObject({
  listen: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65_535).default(8081),
    })
    .prefault({}),
  public_url: z.url({ protocol: /^https?$/ }),
  kernel: z.string().min(1).default(resolve(RAMDISK_DIR, 'vmlinuz')),
  initramfs: z.string().min(1).default(resolve(RAMDISK_DIR, 'initramfs.gz')),
  /** Added to the ramdisk's kernel command line. */
  kernel_args: z.string().max(1024).regex(/^[^\r\n]*$/, 'one line').default('console=tty0 console=ttyS0,115200n8'),
  /**
   * The site's image catalog for `deploy_node` (a design's `platform.image` names an entry): the
   * agent fetches an image into image_cache_dir, checks its sha256, and the ramdisk writes it to
   * the node's disk (agent/images.ts).
   */
  images: z.record(ImageName, ImageSource).default({}),
  image_cache_dir: z.string().min(1).default(IMAGE_CACHE_DIR),
  /**
   * Which image URLs a deploy job may name itself (an Ironic lessee's `image_source` URL, not a
   * catalog name): the URL must start with one of these, compared after URL normalization
   * (scheme and host lower-cased, default port dropped, dot segments resolved, credentials
   * ignored). This is the SSRF control: the lessee chooses the URL and the agent fetches it from
   * inside the site, so narrow it to where images live (`["https://images.example.com/"]`); a
   * prefix with a host needs its path (at least `/`) so that it cannot match a longer host name.
   * Redirects must match too. `["http://", "https://"]` allows plain http for a lab; `[]` allows
   * no URL images at all. Default: any https URL.
   */
  image_url_prefixes: z
    .array(
      z
        .string()
        .max(2048)
        .refine((p) => normalizeUrlPrefix(p) !== null, 'http:// or https://, or an http(s) URL with a host and a path, e.g. https://images.example.com/ (no credentials, query or fragment)'),
    )
    .max(64)
    .default([...DEFAULT_IMAGE_URL_PREFIXES]),
});
export type NetbootConfig = z.infer<typeof NetbootConfig>;

/**
 * Agent configuration: `--config FILE` (JSON) or the environment (SLIPWAY_API_URL,
 * SLIPWAY_AGENT_TOKEN). BMC credentials may stay on-prem: a node's driver_info can name a
 * `credential_ref` that only this file resolves, so the cloud never holds that password.
 */
const Credential = z.strictObject({ username: z.string().min(1), password: z.string() });

export const AgentConfig = z.strictObject({
  api_url: z.url(),
  token: z.string().min(8).optional(),
  token_file: z.string().optional(),
  /** Informational: the site is the agent token's project. */
  site: z.string().optional(),
  /** Jobs run at once (distinct BMCs and hosts; one job per BMC or SSH host is always serialized). */
  concurrency: z.number().int().min(1).max(64).default(4),
  /** Claim lease; heartbeats renew it at a third of this. */
  lease_seconds: z.number().int().min(5).max(900).default(60),
  /** Long-poll wait per claim request (the API allows up to 20 s). */
  poll_seconds: z.number().min(0).max(20).default(20),
  /** On SIGTERM: how long running jobs may finish before they are released. */
  shutdown_grace_seconds: z.number().min(0).max(600).default(30),
  credentials: z.record(z.string(), Credential).default({}),
  ipmi: z
    .strictObject({
      cipher_suite: z.number().int().min(0).max(17).default(3),
      min_command_interval_ms: z.number().int().min(0).default(1000),
      timeout_seconds: z.number().min(1).default(15),
      retries: z.number().int().min(0).max(10).default(2),
      power_timeout_ms: z.number().int().min(100).default(60_000),
      poll_interval_ms: z.number().int().min(10).default(1000),
    })
    .prefault({}),
  redfish: z
    .strictObject({
      verify_ca: z.boolean().default(true),
      timeout_ms: z.number().int().min(100).default(10_000),
      power_timeout_ms: z.number().int().min(100).default(300_000),
      poll_interval_ms: z.number().int().min(10).default(2000),
    })
    .prefault({}),
  /** SSH jobs (Commissaire hosts); a job's `timeout_seconds` overrides the command timeout. */
  ssh: z
    .strictObject({
      connect_timeout_seconds: z.number().min(1).max(300).default(20),
      command_timeout_seconds: z.number().min(1).max(86_400).default(600),
      /** Captured stdout/stderr per command, each cut to its tail. */
      max_output_bytes: z.number().int().min(1024).max(1024 * 1024).default(64 * 1024),
    })
    .prefault({}),
  /**
   * Drydock deploys: a command the agent runs before it sets PXE and power-cycles the node, with
   * the node's boot-action info as JSON on stdin (`node_name`, `task_id`, `action_key`,
   * `report_url`, `actions`, `packages`) — where the site's install pipeline learns the node key
   * (upstream hands it over as a MaaS tag). A non-zero exit fails the deploy of that node.
   */
  deploy_hook: z
    .strictObject({
      command: z.array(z.string().min(1)).min(1),
      timeout_seconds: z.number().min(1).max(3600).default(120),
    })
    .optional(),
  /** The site boot service for `inspect` and `clean` jobs (absent: this agent runs neither). */
  netboot: NetbootConfig.optional(),
  /**
   * `fetch` jobs: requests the control plane (outside the site) asks this agent to make to
   * addresses inside it — design documents, boot-action assets, container managers.
   * `url_prefixes`: the only URLs fetched (e.g. ["http://deckhand.site1:9000/"]); absent, any
   * http(s) URL the site's control plane sends.
   */
  fetch: z
    .strictObject({
      url_prefixes: z.array(z.string().regex(/^https?:\/\/[^/]+/i, 'an http(s) URL prefix')).optional(),
    })
    .prefault({}),
});
export type AgentConfig = z.infer<typeof AgentConfig> & { token: string };

export class ConfigError extends Error {}

export function loadConfig(argv: string[], env: Record<string, string | undefined>): AgentConfig {
  const i = argv.indexOf('--config');
  let raw: Record<string, unknown> = {};
  if (i >= 0) {
    const file = argv[i + 1];
    if (!file) throw new ConfigError('--config needs a file name');
    try {
      raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`cannot read config ${file}: ${(err as Error).message}`);
    }
  }
  if (env.SLIPWAY_API_URL && raw.api_url === undefined) raw.api_url = env.SLIPWAY_API_URL;
  if (env.SLIPWAY_AGENT_TOKEN && raw.token === undefined && raw.token_file === undefined) raw.token = env.SLIPWAY_AGENT_TOKEN;
  const parsed = AgentConfig.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((x) => `${x.path.join('.') || 'config'}: ${x.message}`).join('; '));
  }
  const token = parsed.data.token ?? (parsed.data.token_file ? readFileSync(parsed.data.token_file, 'utf8').trim() : undefined);
  if (!token) throw new ConfigError('no agent token: set SLIPWAY_AGENT_TOKEN, or token / token_file in the config file');
  return { ...parsed.data, token };
}
