import { type AddressRules, patternsFromEnv, siteAddressesFromEnv } from './util/addresses.ts';

/**
 * Deployment settings that change behaviour (not wiring). Read once per process from the
 * environment by the composition root; defaults follow upstream Blazar.
 */
export interface Config {
  /** Blazar `minutes_before_end_lease`: default before_end event offset; 0 disables it. */
  minutesBeforeEndLease: number;
  /** Blazar `cleaning_time`: minutes kept free around every allocation of a node. */
  cleaningMinutes: number;
  /** Attempts for an allocation transaction that lost a race before answering 409. */
  allocationAttempts: number;
  /**
   * Blazar `[physical:host] before_end`: what a reservation's `before_end: default` does.
   * '' does nothing; 'snapshot' is accepted and recorded as unsupported (no bare-metal driver can image a node).
   */
  beforeEndAction: '' | 'snapshot';
  /**
   * Minutes after its time during which a due event that cannot run yet (its lease busy, its
   * nodes still held by the lease before) is retried; then the sweeper only, and a blocked
   * start fails (upstream `event_max_retries`).
   */
  eventRetryMinutes: number;
  /** The site whose agent reaches Commissaire hosts over SSH (`SLIPWAY_COMMISSAIRE_SITE`). */
  commissaireSite: string;
  /** Commands run over SSH per step and host OS (`SLIPWAY_COMMISSAIRE_COMMANDS`, JSON; see DEFAULT_COMMISSAIRE_COMMANDS). */
  commissaireCommands: CommissaireCommands;
  /** Drydock (issue 5) settings, see `DrydockConfig`. */
  drydock: DrydockConfig;
  /** Ironic `[api]max_limit`: the most nodes one list page holds (`SLIPWAY_IRONIC_MAX_LIMIT`, 1000). */
  ironicMaxLimit: number;
  /**
   * Seconds the site's agent may take for one hardware inspection (power on from the network,
   * the ramdisk's report), passed in the `inspect` job (`SLIPWAY_INSPECT_TIMEOUT_SECONDS`, 600).
   */
  inspectTimeoutSeconds: number;
  /**
   * Seconds the site's agent may take for one disk cleaning (power on from the network, erasing
   * every disk, the ramdisk's report), passed in the `clean` job (`SLIPWAY_CLEAN_TIMEOUT_SECONDS`, 3600).
   */
  cleanTimeoutSeconds: number;
  /**
   * Seconds the site's agent may take for one Ironic deploy (power on from the network, writing
   * and verifying the image, booting the disk): `SLIPWAY_DEPLOY_TIMEOUT_SECONDS`, default 1800.
   */
  deployTimeoutSeconds: number;
  /**
   * Ironic `[conductor]automated_clean`: `provide` erases the node's disks (`cleaning`) before it
   * becomes `available` (`SLIPWAY_AUTOMATED_CLEAN`, true). A node's own `automated_clean`
   * (true/false) overrides it, as upstream.
   */
  automatedClean: boolean;
  /** Blazar `[enforcement]`: operator limits on leases, see `EnforcementConfig`. */
  enforcement: EnforcementConfig;
  /**
   * Which addresses are inside which site (util/addresses.ts): a design_ref, an asset location or
   * a container manager's server_url there is fetched by that site's agent as a `fetch` job.
   * `SLIPWAY_SITE_ADDRESSES`: JSON, site → patterns (`{"site1": ["10.1.0.0/16", "*.site1.corp"]}`).
   * `SLIPWAY_CLOUD_FETCH_ADDRESSES`: comma-separated patterns the control plane fetches itself
   * although they look internal; default none on Lambda, loopback elsewhere (the local stack runs
   * beside the site, and its test servers listen on 127.0.0.1).
   */
  siteAddresses: AddressRules;
}

/**
 * Usage enforcement (Blazar's `[enforcement]` group and its `MaxLeaseDurationFilter`), checked on
 * lease create and update. `-1` disables a limit, as upstream's `max_lease_duration = -1`.
 */
export interface EnforcementConfig {
  /**
   * Upstream `max_lease_duration`: the longest lease in seconds (`SLIPWAY_MAX_LEASE_DURATION`).
   * Default one week (upstream's filter is off unless enabled; its own default is -1).
   */
  maxLeaseDurationSeconds: number;
  /** Upstream `max_lease_duration_exempt_project_ids` (`SLIPWAY_MAX_LEASE_DURATION_EXEMPT_PROJECTS`). */
  maxLeaseDurationExemptProjects: string[];
  /**
   * The most hosts the leases of one project may hold at any one time
   * (`SLIPWAY_MAX_HOSTS_PER_PROJECT`, ours; default -1, no limit).
   */
  maxHostsPerProject: number;
  /** Projects the host cap does not apply to (`SLIPWAY_MAX_HOSTS_PER_PROJECT_EXEMPT_PROJECTS`). */
  maxHostsExemptProjects: string[];
}

/** Drydock task and boot-action settings (upstream config group `timeouts`, `bootaction`). */
export interface DrydockConfig {
  /**
   * The URL deploying nodes report to (`action.report_url` in templates and the admin view),
   * e.g. `https://api.example.com/api/v1.0/bootactions/` (`SLIPWAY_DRYDOCK_REPORT_URL`). Locally
   * the stack's own URL; on AWS the API's.
   */
  reportUrl: string;
  /** Seconds a deploy waits for a node's final boot-action reports (`bootaction_final_status`, 15 min). */
  bootactionFinalStatusSeconds: number;
  /** Lifetime of a presigned bootdata URL (at most 300 s). */
  bootdataUrlSeconds: number;
  /** Top-level tasks of one site running at once (upstream: 1). */
  siteConcurrency: number;
  /** Nodes one task works on at once (the Map's MaxConcurrencyPath). */
  nodeConcurrency: number;
  /** Seconds one agent step (PXE, power cycle, BMC interrogation) may take. */
  agentStepSeconds: number;
}

export type CommissaireStep = 'bootstrap' | 'deploy' | 'upgrade' | 'restart';
/** Per step: commands by host `os` (`default` for any other); `{version}` is replaced in deploy commands. */
export type CommissaireCommands = Record<CommissaireStep, Record<string, string[]>>;

/**
 * What Commissaire's executor does, per OS (upstream-apis.md §2.4–2.5): bootstrap installs and
 * starts the container runtime, deploy moves an Atomic host to an OSTree version, upgrade
 * updates packages, restart reboots (detached, so the command itself returns before the link
 * drops). An OS without commands for a step fails that step with a clear reason.
 */
export const DEFAULT_COMMISSAIRE_COMMANDS: CommissaireCommands = {
  bootstrap: {
    rhel: ['yum -y install docker flannel', 'systemctl enable --now docker'],
    centos: ['yum -y install docker flannel', 'systemctl enable --now docker'],
    fedora: ['dnf -y install docker flannel', 'systemctl enable --now docker'],
    atomic: ['systemctl enable --now docker'],
  },
  deploy: { atomic: ['rpm-ostree deploy {version}'] },
  upgrade: {
    rhel: ['yum -y update'],
    centos: ['yum -y update'],
    fedora: ['dnf -y upgrade'],
    atomic: ['rpm-ostree upgrade'],
    debian: ['apt-get -q update', 'DEBIAN_FRONTEND=noninteractive apt-get -qy upgrade'],
    ubuntu: ['apt-get -q update', 'DEBIAN_FRONTEND=noninteractive apt-get -qy upgrade'],
  },
  restart: { default: ['nohup sh -c "sleep 2; systemctl reboot" >/dev/null 2>&1 &'] },
};

function commandsFromEnv(raw: string | undefined): CommissaireCommands {
  if (!raw || !raw.trim()) return DEFAULT_COMMISSAIRE_COMMANDS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error('SLIPWAY_COMMISSAIRE_COMMANDS must be JSON: {"bootstrap": {"<os>|default": ["cmd", ...]}, "deploy": ..., "upgrade": ..., "restart": ...}');
  }
  const out: CommissaireCommands = { ...DEFAULT_COMMISSAIRE_COMMANDS };
  for (const [step, byOs] of Object.entries(parsed as Record<string, unknown>)) {
    if (!['bootstrap', 'deploy', 'upgrade', 'restart'].includes(step) || !byOs || typeof byOs !== 'object') {
      throw new Error(`SLIPWAY_COMMISSAIRE_COMMANDS: unknown step ${JSON.stringify(step)} or not an object`);
    }
    for (const [os, cmds] of Object.entries(byOs as Record<string, unknown>)) {
      if (!Array.isArray(cmds) || !cmds.every((c) => typeof c === 'string')) throw new Error(`SLIPWAY_COMMISSAIRE_COMMANDS: ${step}.${os} must be a list of strings`);
    }
    out[step as CommissaireStep] = byOs as Record<string, string[]>;
  }
  return out;
}

function intFromEnv(env: Record<string, string | undefined>, name: string, dflt: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function configFromEnv(env: Record<string, string | undefined> = process.env): Config {
  return {
    minutesBeforeEndLease: intFromEnv(env, 'SLIPWAY_MINUTES_BEFORE_END_LEASE', 60),
    cleaningMinutes: intFromEnv(env, 'SLIPWAY_CLEANING_MINUTES', 0),
    allocationAttempts: intFromEnv(env, 'SLIPWAY_ALLOCATION_ATTEMPTS', 8, 1),
    beforeEndAction: beforeEndFromEnv(env.SLIPWAY_BEFORE_END_ACTION),
    eventRetryMinutes: intFromEnv(env, 'SLIPWAY_EVENT_RETRY_MINUTES', 10, 1),
    commissaireSite: (env.SLIPWAY_COMMISSAIRE_SITE ?? '').trim() || 'default',
    commissaireCommands: commandsFromEnv(env.SLIPWAY_COMMISSAIRE_COMMANDS),
    drydock: {
      reportUrl: (env.SLIPWAY_DRYDOCK_REPORT_URL ?? '').trim() || 'http://localhost:9000/api/v1.0/bootactions/',
      bootactionFinalStatusSeconds: intFromEnv(env, 'SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS', 900, 1),
      bootdataUrlSeconds: Math.min(300, intFromEnv(env, 'SLIPWAY_BOOTDATA_URL_SECONDS', 300, 1)),
      siteConcurrency: intFromEnv(env, 'SLIPWAY_DRYDOCK_SITE_CONCURRENCY', 1, 1),
      nodeConcurrency: intFromEnv(env, 'SLIPWAY_DRYDOCK_NODE_CONCURRENCY', 10, 1),
      // Above the workflow's 300 s heartbeat: Step Functions wants the heartbeat inside the timeout.
      agentStepSeconds: intFromEnv(env, 'SLIPWAY_DRYDOCK_AGENT_STEP_SECONDS', 900, 301),
    },
    ironicMaxLimit: intFromEnv(env, 'SLIPWAY_IRONIC_MAX_LIMIT', 1000, 1),
    inspectTimeoutSeconds: intFromEnv(env, 'SLIPWAY_INSPECT_TIMEOUT_SECONDS', 600, 1),
    cleanTimeoutSeconds: intFromEnv(env, 'SLIPWAY_CLEAN_TIMEOUT_SECONDS', 3600, 1),
    deployTimeoutSeconds: intFromEnv(env, 'SLIPWAY_DEPLOY_TIMEOUT_SECONDS', 1800, 1),
    automatedClean: boolFromEnv(env, 'SLIPWAY_AUTOMATED_CLEAN', true),
    enforcement: {
      maxLeaseDurationSeconds: limitFromEnv(env, 'SLIPWAY_MAX_LEASE_DURATION', 7 * 24 * 3600),
      maxLeaseDurationExemptProjects: listFromEnv(env.SLIPWAY_MAX_LEASE_DURATION_EXEMPT_PROJECTS),
      maxHostsPerProject: limitFromEnv(env, 'SLIPWAY_MAX_HOSTS_PER_PROJECT', -1),
      maxHostsExemptProjects: listFromEnv(env.SLIPWAY_MAX_HOSTS_PER_PROJECT_EXEMPT_PROJECTS),
    },
    siteAddresses: {
      sites: siteAddressesFromEnv(env.SLIPWAY_SITE_ADDRESSES),
      cloud: patternsFromEnv('SLIPWAY_CLOUD_FETCH_ADDRESSES', env.SLIPWAY_CLOUD_FETCH_ADDRESSES ?? (env.AWS_LAMBDA_FUNCTION_NAME ? '' : LOCAL_CLOUD_FETCH)),
    },
  };
}

/** Off Lambda the control plane is on the operator's machine: its own loopback is not a site's. */
const LOCAL_CLOUD_FETCH = '127.0.0.0/8, ::1, localhost';

/** A boolean setting: true/false (also 1/0, yes/no, on/off, any case); unset or blank is the default. */
function boolFromEnv(env: Record<string, string | undefined>, name: string, dflt: boolean): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '') return dflt;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(env[name])}`);
}

/** A limit: a positive integer, or -1 for none. */
function limitFromEnv(env: Record<string, string | undefined>, name: string, dflt: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || (n < 1 && n !== -1)) throw new Error(`${name} must be a positive integer, or -1 for no limit, got ${JSON.stringify(raw)}`);
  return n;
}

/** A comma-separated list (blanks ignored), as oslo.config's ListOpt. */
function listFromEnv(raw: string | undefined): string[] {
  return (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function beforeEndFromEnv(raw: string | undefined): Config['beforeEndAction'] {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'snapshot') return v;
  throw new Error(`SLIPWAY_BEFORE_END_ACTION must be '' or 'snapshot', got ${JSON.stringify(raw)}`);
}
