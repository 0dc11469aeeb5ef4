import { buildTar, type TarFile } from '#core/drydock/bootactions/tarball.ts';

/**
 * The config drive of an image deploy (deploy contract §5): an uncompressed ustar the ramdisk
 * extracts into the freshly written root filesystem (`tar -x -C /mnt/root`), so member names
 * are relative. It seeds cloud-init's NoCloud datasource (meta-data, user-data) and, when the
 * node has boot actions, leaves their key and URLs in /etc/slipway/bootaction for OSes without
 * cloud-init.
 *
 * Values go into key=value lines and YAML: a newline (or any control character) in one could
 * add lines of its own, so such values are refused rather than escaped.
 *
 * An Ironic deploy (`configdrive`: Ironic's JSON config drive as the lessee gave it) uses the same
 * NoCloud seed, filled from it:
 * - `var/lib/cloud/seed/nocloud/meta-data` (0644): JSON `{"instance-id", "local-hostname":
 *   meta_data.hostname ?? hostname, "public-keys": [the values of meta_data.public_keys]}`;
 * - `var/lib/cloud/seed/nocloud/user-data` (0600): user_data verbatim (a string), or
 *   `#cloud-config\n` + JSON (an object: JSON is YAML); without user_data, `#cloud-config` with the
 *   hostname only;
 * - `var/lib/cloud/seed/nocloud/network-config` (0644): network_data as JSON, only when given;
 * - `etc/slipway/meta_data.json` (0644) and `etc/slipway/user-data` (0600): the lessee's meta_data
 *   as given and the user-data bytes, for OSes without cloud-init (each only when given);
 * - `etc/slipway/vendor_data.json` (0644): vendor_data as given, only when given. It is not put in
 *   the NoCloud seed: NoCloud reads `vendor-data` as user-data, which an OpenStack vendor_data
 *   object is not.
 * When a job carries both boot-action info and a `configdrive`, the drive holds both: the
 * bootaction file as for Drydock plus the lessee's files, and the lessee's user_data (when given)
 * replaces the generated user-data — so its runcmd that fetches the boot actions is gone, and only
 * an OS that reads /etc/slipway/bootaction itself runs them. Without user_data, the generated
 * user-data stays.
 */

export interface ConfigDriveBootAction {
  node_name: string;
  /** The node's boot-action key, hex (a secret: it is written 0600 and never logged). */
  action_key: string;
  /** Ends in `/`: the node POSTs `<report_url><action_id>`. */
  report_url: string;
  /** cloud-init `packages:` entries: a name, or [name, version]. */
  packages: readonly (string | readonly [string, string | null])[];
  action_ids: readonly string[];
}

/** Ironic's JSON config drive (API ≥ 1.56), checked by the job's schema (agent/executor.ts). */
export interface IronicConfigDrive {
  meta_data?: Record<string, unknown>;
  /** A string is the user-data verbatim; an object is cloud-config. */
  user_data?: string | Record<string, unknown>;
  network_data?: Record<string, unknown>;
  vendor_data?: Record<string, unknown>;
}

export interface ConfigDriveInput {
  /** cloud-init's instance-id: a new one makes cloud-init run its once-per-instance modules again. */
  instanceId: string;
  hostname: string;
  bootaction?: ConfigDriveBootAction;
  /** `<api>/bootactions/nodes/<name>`: the node GETs `/units` and `/files` under it with its key. */
  bootdataUrl?: string;
  /** An Ironic deploy's config drive (absent: the Drydock layout). */
  configdrive?: IronicConfigDrive;
  /** Member mtimes (default now). */
  mtime?: Date | number;
}

export class ConfigDriveError extends Error {
  override name = 'ConfigDriveError';
}

export const CONFIGDRIVE_MEMBERS = {
  metaData: 'var/lib/cloud/seed/nocloud/meta-data',
  userData: 'var/lib/cloud/seed/nocloud/user-data',
  bootaction: 'etc/slipway/bootaction',
  networkConfig: 'var/lib/cloud/seed/nocloud/network-config',
  slipwayMetaData: 'etc/slipway/meta_data.json',
  slipwayUserData: 'etc/slipway/user-data',
  slipwayVendorData: 'etc/slipway/vendor_data.json',
} as const;

/** The file the runcmd reads the key and URL from (so neither is in user-data or a command line). */
const BOOTACTION_FILE = `/${CONFIGDRIVE_MEMBERS.bootaction}`;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it looks for
const CONTROL = /[\u0000-\u001f\u007f]/;

function oneLine(what: string, value: string): string {
  if (CONTROL.test(value)) throw new ConfigDriveError(`config drive: ${what} contains a newline or another control character`);
  return value;
}

/** A package entry as `name` or `name=version` (apt's spelling), for the bootaction file. */
function packageWord(p: string | readonly [string, string | null]): string {
  return typeof p === 'string' ? p : p[1] ? `${p[0]}=${p[1]}` : p[0];
}

/**
 * The shell the runcmd runs (as root, once per instance): fetch the node's `files` and `units`
 * bootdata with its key, unpack each (absolute member names: `tar -xPz`, as upstream's nodes do),
 * then enable and start every unit the units tarball held. The key goes to curl through its
 * config on stdin (`-K -`), never on a command line `ps` shows.
 */
export const BOOTDATA_SCRIPT = [
  'set -eu',
  `f=${BOOTACTION_FILE}`,
  "key=$(sed -n 's/^action_key=//p' \"$f\")",
  "url=$(sed -n 's/^bootdata_url=//p' \"$f\")",
  'fetch() { printf \'header = "X-Bootaction-Key: %s"\\n\' "$key" | curl -fsSL --retry 5 --retry-connrefused -K - "$url/$1"; }',
  'fetch files | tar -xPzf -',
  'units=$(fetch units | tar -xPzvf -)',
  'systemctl daemon-reload',
  'for u in $units; do systemctl enable "${u##*/}"; systemctl start --no-block "${u##*/}"; done',
].join('\n');

/** A YAML double-quoted scalar: JSON's string syntax is a subset of YAML's. */
const q = (s: string) => JSON.stringify(s);

export function userData(input: Pick<ConfigDriveInput, 'hostname' | 'bootaction' | 'bootdataUrl'>): string {
  const lines = ['#cloud-config', `hostname: ${q(input.hostname)}`];
  const packages = input.bootaction?.packages ?? [];
  if (packages.length === 0) lines.push('packages: []');
  else {
    lines.push('packages:');
    for (const p of packages) lines.push(typeof p === 'string' ? `  - ${q(p)}` : p[1] ? `  - [${q(p[0])}, ${q(p[1])}]` : `  - ${q(p[0])}`);
  }
  if (input.bootaction && input.bootdataUrl) lines.push('runcmd:', `  - [${q('sh')}, ${q('-c')}, ${q(BOOTDATA_SCRIPT)}]`);
  return `${lines.join('\n')}\n`;
}

/** An Ironic user_data as the user-data file's bytes: a string verbatim, an object as cloud-config. */
export function ironicUserData(userData: string | Record<string, unknown>): Buffer {
  return Buffer.from(typeof userData === 'string' ? userData : `#cloud-config\n${JSON.stringify(userData)}\n`);
}

/**
 * meta_data.public_keys' values (OpenStack's `{name: key}`; a list is taken too), each one line:
 * they become authorized_keys lines.
 */
export function ironicPublicKeys(metaData: Record<string, unknown> | undefined): string[] {
  const keys = metaData?.public_keys;
  if (keys === undefined || keys === null) return [];
  const values = Array.isArray(keys) ? keys : typeof keys === 'object' ? Object.values(keys) : null;
  if (values === null) throw new ConfigDriveError('config drive: meta_data.public_keys must be an object of key strings');
  return values.map((k, i) => {
    if (typeof k !== 'string' || k.trim() === '') throw new ConfigDriveError(`config drive: meta_data.public_keys[${i}] is not a non-empty string`);
    return oneLine(`meta_data.public_keys[${i}]`, k);
  });
}

const json = (v: unknown) => Buffer.from(`${JSON.stringify(v)}\n`);

/** The config drive tar (uncompressed ustar; contract §5). Throws ConfigDriveError for unusable values. */
export function buildConfigDrive(input: ConfigDriveInput): Buffer {
  oneLine('instance-id', input.instanceId);
  oneLine('hostname', input.hostname);
  if (input.bootdataUrl !== undefined) oneLine('bootdata_url', input.bootdataUrl);
  const cd = input.configdrive;
  const files: TarFile[] = [];
  if (!cd) {
    files.push(
      { path: CONFIGDRIVE_MEMBERS.metaData, mode: 0o644, data: json({ 'instance-id': input.instanceId, 'local-hostname': input.hostname }) },
      { path: CONFIGDRIVE_MEMBERS.userData, mode: 0o600, data: Buffer.from(userData(input)) },
    );
  } else {
    const given = cd.meta_data?.hostname;
    if (given !== undefined && typeof given !== 'string') throw new ConfigDriveError('config drive: meta_data.hostname is not a string');
    const hostname = oneLine('meta_data.hostname', given ?? input.hostname);
    files.push({ path: CONFIGDRIVE_MEMBERS.metaData, mode: 0o644, data: json({ 'instance-id': input.instanceId, 'local-hostname': hostname, 'public-keys': ironicPublicKeys(cd.meta_data) }) });
    // The lessee's user_data replaces the generated one; without it, a node with boot actions
    // keeps the generated one (its runcmd fetches them) and any other gets the hostname only.
    const user =
      cd.user_data !== undefined
        ? ironicUserData(cd.user_data)
        : Buffer.from(input.bootaction ? userData({ ...input, hostname }) : `#cloud-config\nhostname: ${q(hostname)}\n`);
    files.push({ path: CONFIGDRIVE_MEMBERS.userData, mode: 0o600, data: user });
    if (cd.network_data !== undefined) files.push({ path: CONFIGDRIVE_MEMBERS.networkConfig, mode: 0o644, data: json(cd.network_data) });
    if (cd.meta_data !== undefined) files.push({ path: CONFIGDRIVE_MEMBERS.slipwayMetaData, mode: 0o644, data: json(cd.meta_data) });
    if (cd.user_data !== undefined) files.push({ path: CONFIGDRIVE_MEMBERS.slipwayUserData, mode: 0o600, data: user });
    if (cd.vendor_data !== undefined) files.push({ path: CONFIGDRIVE_MEMBERS.slipwayVendorData, mode: 0o644, data: json(cd.vendor_data) });
  }
  const b = input.bootaction;
  if (b) {
    // Space-separated lists: an item with whitespace would read as two.
    const words = (what: string, list: readonly string[]) =>
      list.map((w, i) => {
        if (w === '' || /\s/.test(w) || CONTROL.test(w)) throw new ConfigDriveError(`config drive: ${what}[${i}] is empty or contains whitespace or a control character`);
        return w;
      });
    const lines = [
      `node_name=${oneLine('bootaction.node_name', b.node_name)}`,
      `action_key=${oneLine('bootaction.action_key', b.action_key)}`,
      ...(input.bootdataUrl !== undefined ? [`bootdata_url=${input.bootdataUrl}`] : []),
      `report_url=${oneLine('bootaction.report_url', b.report_url)}`,
      `action_ids=${words('bootaction.action_ids', b.action_ids).join(' ')}`,
      `packages=${words('bootaction.packages', b.packages.map(packageWord)).join(' ')}`,
    ];
    files.push({ path: CONFIGDRIVE_MEMBERS.bootaction, mode: 0o600, data: Buffer.from(`${lines.join('\n')}\n`) });
  }
  return buildTar(files, { mtime: input.mtime ?? new Date() });
}
