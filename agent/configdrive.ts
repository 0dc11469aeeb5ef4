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

export interface ConfigDriveInput {
  /** cloud-init's instance-id: a new one makes cloud-init run its once-per-instance modules again. */
  instanceId: string;
  hostname: string;
  bootaction?: ConfigDriveBootAction;
  /** `<api>/bootactions/nodes/<name>`: the node GETs `/units` and `/files` under it with its key. */
  bootdataUrl?: string;
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

/** The config drive tar (uncompressed ustar; contract §5). Throws ConfigDriveError for unusable values. */
export function buildConfigDrive(input: ConfigDriveInput): Buffer {
  oneLine('instance-id', input.instanceId);
  oneLine('hostname', input.hostname);
  if (input.bootdataUrl !== undefined) oneLine('bootdata_url', input.bootdataUrl);
  const files: TarFile[] = [
    { path: CONFIGDRIVE_MEMBERS.metaData, mode: 0o644, data: Buffer.from(`${JSON.stringify({ 'instance-id': input.instanceId, 'local-hostname': input.hostname })}\n`) },
    { path: CONFIGDRIVE_MEMBERS.userData, mode: 0o600, data: Buffer.from(userData(input)) },
  ];
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
