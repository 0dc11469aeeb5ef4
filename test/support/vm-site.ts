import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { ImageCache } from '../../agent/images.ts';
import type { NetbootEvent, NetbootService } from '../../agent/netboot.ts';
import { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { Vm } from '../../agent/sim/vm.ts';
import type { LocalStack, LocalStackOptions } from '../../infra/local/stack.ts';
import { call, tokenFor } from './api.ts';
import { bootFromService, RAMDISK, startBootService } from './machines.ts';
import { startOwnStack } from './own-stack.ts';
import { waitFor } from './wait.ts';

/**
 * A Drydock site whose nodes are QEMU virtual machines, for the end-to-end machine tests and
 * `npm run bench -- machines`: a local stack of its own, the site's agent with its boot service
 * and an image cache, one Redfish simulator per node (on 127.0.0.(40+i), one port) driving the
 * node's VM, and a design served over HTTP naming each node's BMC, boot MAC and
 * `platform.image`, with one boot action (`hello`) that every node runs from its installed OS:
 * a unit and a script that write `/var/lib/hello` and post a `success` report with the node's key.
 *
 * How a VM reaches the cloud: QEMU's user network with `restrict=on`, one guestfwd per host
 * service (agent/sim/vm.ts). The stack is told the guest-side addresses: the report URL (and so
 * the bootdata URL) names API.ip:API.port, presigned S3 URLs name S3.ip:S3.port
 * (SLIPWAY_S3_PUBLIC_ENDPOINT); each VM forwards them to the stack's loopback ports. Booting
 * "from disk" is the sim's direct kernel boot of the Slipway ramdisk with `slipway.step=boot`,
 * which hands over to the disk's /sbin/init.
 */
export const API = { ip: '10.0.2.101', port: 9000 } as const;
export const S3 = { ip: '10.0.2.102', port: 9001 } as const;
const USER = 'admin';
const PASS = 'vm-site-secret';
const MiB = 1024 ** 2;

export interface VmNodeSpec {
  name: string;
  mac: string;
  /** Default 256. */
  memoryMb?: number;
  /** Default 64. */
  diskMb?: number;
  /** The design's `platform.image` (a name of the agent's catalog). */
  image?: string;
  /**
   * A disk that cannot be written: every write the guest makes fails (QEMU blkdebug), so an
   * erase of this node fails, naming /dev/vda.
   */
  failWrites?: boolean;
}

export interface VmSite {
  stack: LocalStack;
  site: string;
  netboot: NetbootService;
  agent: Agent;
  vms: Map<string, Vm>;
  sims: Map<string, RedfishSim>;
  /** The nodes as given to startVmSite. */
  nodes: readonly VmNodeSpec[];
  /** Everything the boot service served, with the time (performance.now()). */
  events: (NetbootEvent & { at: number })[];
  /** A Drydock task on the site's design for the given nodes (all when omitted). */
  createTask(action: string, nodes?: string[]): Promise<{ task_id: string }>;
  /** Polls the task until it is complete; throws with the VMs' consoles after `ms`. */
  finished(taskId: string, ms?: number): Promise<any>;
  /** Messages of a task and of its subtasks (`subtaskerrors` shows failures only). */
  messages(taskId: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** The site design: BMCs, boot MACs and images of the nodes, and the `hello` boot action. */
export function vmSiteDesign(site: string, redfishPort: number, nodes: readonly VmNodeSpec[]): string {
  const docs = nodes.map(
    (n, i) => `---
schema: drydock/BaremetalNode/v1
metadata:
  schema: metadata/Document/v1
  name: ${n.name}
data:
  host_profile: vm
  addressing:
    - network: oob
      address: 127.0.0.${40 + i}
  metadata:
    boot_mac: ${n.mac}
${n.image ? `  platform:\n    image: ${n.image}\n` : ''}`,
  );
  return `---
schema: drydock/Region/v1
metadata:
  schema: metadata/Document/v1
  name: ${site}
data: {}
---
schema: drydock/Network/v1
metadata:
  schema: metadata/Document/v1
  name: oob
data:
  cidr: 127.0.0.0/24
---
schema: drydock/HostProfile/v1
metadata:
  schema: metadata/Document/v1
  name: vm
data:
  oob:
    type: redfish
    network: oob
    account: ${USER}
    credential: ${PASS}
    port: ${redfishPort}
    scheme: http
    system_id: '1'
${docs.join('')}---
schema: drydock/BootAction/v1
metadata:
  schema: metadata/Document/v1
  name: hello
data:
  assets:
    - type: unit
      path: /etc/systemd/system/hello.service
      permissions: '444'
      data: |
        [Unit]
        Description=Hello from {{ node.hostname }}
        [Service]
        ExecStart=/usr/local/bin/hello.sh
      data_pipeline:
        - utf8_decode
        - template
    - type: file
      path: /usr/local/bin/hello.sh
      permissions: '755'
      data: |
        #!/bin/sh
        mkdir -p /var/lib && echo "hello from {{ node.hostname }}" > /var/lib/hello && sync
        exec timeout 30 wget -q -O /dev/null --header 'Content-Type: application/json' --header 'X-Bootaction-Key: {{ action.action_key }}' --post-data '{"status": "success", "details": [{"message": "hello from {{ node.hostname }}", "error": false}]}' '{{ action.report_url }}{{ action.action_id }}'
      data_pipeline:
        - utf8_decode
        - template
`;
}

export async function startVmSite(opts: {
  name: string;
  nodes: readonly VmNodeSpec[];
  /** The agent's image catalog: name → a file and its sha256 (which may be wrong, on purpose). */
  images: Record<string, { path: string; sha256: string }>;
  /** Settings of the stack (e.g. SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS). */
  env?: Record<string, string>;
  /** The stack's clock (a TestClock, to jump over a cleaning gap); the system clock when omitted. */
  clock?: LocalStackOptions['clock'];
}): Promise<VmSite> {
  const dir = mkdtempSync(join(tmpdir(), `slipway-${opts.name}-`));
  const site = `vmsite-${process.pid}`;
  const stoppers: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const own = await startOwnStack(opts.name, {
      env: {
        SLIPWAY_DRYDOCK_REPORT_URL: `http://${API.ip}:${API.port}/api/v1.0/bootactions/`,
        SLIPWAY_S3_PUBLIC_ENDPOINT: `http://${S3.ip}:${S3.port}`,
        ...(opts.env ?? {}),
      },
      ...(opts.clock ? { clock: opts.clock } : {}),
    });
    stoppers.push(own.stop);
    const { stack } = own;
    const apiPort = Number(new URL(stack.url).port);
    const s3Port = Number(new URL(stack.s3Endpoint).port);

    const events: (NetbootEvent & { at: number })[] = [];
    const images = new ImageCache({
      dir: join(dir, 'images'),
      images: Object.fromEntries(Object.entries(opts.images).map(([name, i]) => [name, { url: `file://${i.path}`, sha256: i.sha256 }])),
    });
    const netboot = await startBootService((e) => events.push({ ...e, at: performance.now() }), { images });
    stoppers.push(() => netboot.stop());

    const vms = new Map<string, Vm>();
    const sims = new Map<string, RedfishSim>();
    let redfishPort = 0;
    for (const [i, n] of opts.nodes.entries()) {
      const nodeDir = join(dir, n.name);
      mkdirSync(nodeDir, { recursive: true });
      const boot = bootFromService(nodeDir, netboot);
      const vm = new Vm({
        dir: nodeDir,
        name: n.name,
        memoryMb: n.memoryMb ?? 256,
        cpus: 1,
        mac: n.mac,
        disks: [{ sizeBytes: (n.diskMb ?? 64) * MiB, ...(n.failWrites ? { failWrites: true } : {}) }],
        netboot: boot.netboot!,
        forwards: [...boot.forwards!, { guestIp: API.ip, guestPort: API.port, hostPort: apiPort }, { guestIp: S3.ip, guestPort: S3.port, hostPort: s3Port }],
        localBoot: { kernel: RAMDISK.kernel, initrd: RAMDISK.initramfs, cmdline: 'console=ttyS0 panic=-1 slipway.step=boot' },
      });
      vms.set(n.name, vm);
      stoppers.push(() => vm.stop());
      const sim = await startRedfishSim({ host: `127.0.0.${40 + i}`, port: redfishPort, username: USER, password: PASS, systems: [{ id: '1', vm }] });
      redfishPort = Number(new URL(sim.url).port);
      sims.set(n.name, sim);
      stoppers.push(() => sim.stop());
    }

    const design = vmSiteDesign(site, redfishPort, opts.nodes);
    const server: Server = createServer((req, res) => {
      if (req.url === '/site.yaml') res.writeHead(200, { 'Content-Type': 'application/x-yaml' }).end(design);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    stoppers.push(() => new Promise((r) => server.close(r)));
    const designRef = `http://127.0.0.1:${(server.address() as { port: number }).port}/site.yaml`;

    const token = (await tokenFor('agent', site)).token;
    const cfg = { ...AgentConfig.parse({ api_url: stack.url, token, poll_seconds: 1, redfish: { poll_interval_ms: 100, timeout_ms: 2000, power_timeout_ms: 10_000 } }), token };
    const agent = new Agent(cfg, driverFactory(cfg), netboot);
    agent.start();
    stoppers.push(() => agent.stop());

    const consoles = () => [...vms].map(([name, vm]) => `--- ${name}:\n${vm.console().slice(-2500)}`).join('\n');
    return {
      stack,
      site,
      netboot,
      agent,
      vms,
      sims,
      nodes: opts.nodes,
      events,
      async createTask(action, nodes) {
        const filter = nodes ? { filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_names: nodes }] } : null;
        const res = await call('POST', '/api/v1.0/tasks', { body: { action, design_ref: designRef, node_filter: filter } });
        if (res.status !== 201) throw new Error(`POST /api/v1.0/tasks ${action}: ${res.status} ${res.text}`);
        return res.body;
      },
      async finished(taskId, ms = 240_000) {
        const end = Date.now() + ms;
        for (;;) {
          const t = (await call('GET', `/api/v1.0/tasks/${taskId}`)).body;
          if (t.status === 'complete') return t;
          if (Date.now() > end) throw new Error(`task ${taskId} still ${t.status} after ${ms} ms: ${JSON.stringify(t.result)}\n${consoles()}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      },
      async messages(taskId) {
        const t = (await call('GET', `/api/v1.0/tasks/${taskId}`)).body;
        const subs = await Promise.all((t.subtask_id_list as string[]).map(async (id) => (await call('GET', `/api/v1.0/tasks/${id}`)).body));
        return [t, ...subs].flatMap((x) => x.result.details.messageList.map((m: any) => (m.extra?.detail as string | undefined) ?? (m.message as string)));
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

const IRONIC = { 'X-OpenStack-Ironic-API-Version': '1.78' } as const;

/**
 * Enrols nodes of the site for leases (the tenant test and `npm run bench -- tenant`), all at
 * once: each as an Ironic node (its BMC, a port with its boot MAC) taken `manage` → `provide`
 * to `available` — enrolled with automated cleaning off, as the VM's disk starts out empty, then
 * on, so that an undeploy or a lease end erases it — and as a Blazar host with `host`'s
 * capabilities (e.g. a pool a lease filter names). Returns name → Ironic uuid.
 */
export async function enrolNodes(site: VmSite, names: readonly string[], host: Record<string, unknown> = {}): Promise<Map<string, string>> {
  const uuids = new Map<string, string>();
  await Promise.all(
    names.map(async (name) => {
      const spec = site.nodes.find((n) => n.name === name);
      const sim = site.sims.get(name);
      if (!spec || !sim) throw new Error(`the site has no node ${name}`);
      const created = await call('POST', '/v1/nodes', {
        headers: IRONIC,
        body: {
          name,
          driver: 'redfish',
          conductor_group: site.site,
          automated_clean: false,
          driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS },
        },
      });
      if (created.status !== 201) throw new Error(`POST /v1/nodes ${name}: ${created.status} ${created.text}`);
      const uuid = created.body.uuid as string;
      uuids.set(name, uuid);
      const port = await call('POST', '/v1/ports', { headers: IRONIC, body: { address: spec.mac, node_uuid: uuid, pxe_enabled: true } });
      if (port.status !== 201) throw new Error(`POST /v1/ports ${name}: ${port.status} ${port.text}`);
      for (const [target, state] of [
        ['manage', 'manageable'],
        ['provide', 'available'],
      ] as const) {
        const res = await call('PUT', `/v1/nodes/${uuid}/states/provision`, { headers: IRONIC, body: { target } });
        if (res.status !== 202) throw new Error(`${target} ${name}: ${res.status} ${res.text}`);
        await waitFor(`${name} ${state}`, async () => (await call('GET', `/v1/nodes/${uuid}`, { headers: IRONIC })).body.provision_state === state, 30_000);
      }
      const clean = await call('PATCH', `/v1/nodes/${uuid}`, { headers: IRONIC, body: [{ op: 'replace', path: '/automated_clean', value: true }] });
      if (clean.status !== 200) throw new Error(`automated_clean on ${name}: ${clean.status} ${clean.text}`);
      const enrolled = await call('POST', '/v1/os-hosts', { body: { name, ...host } });
      if (enrolled.status !== 201) throw new Error(`POST /v1/os-hosts ${name}: ${enrolled.status} ${enrolled.text}`);
    }),
  );
  return uuids;
}
