/**
 * A small Drydock site for the deploy tests: one Region (the site, whose agent drives the
 * BMCs), an OOB network on loopback, a PXE network, one host profile whose BMCs are Redfish
 * simulators (plain HTTP, one per node on 127.0.0.(11+i), all on one port), n nodes and two boot actions: a
 * signalling one with a unit and a file for every node, and a non-signalling one with a file
 * and packages. Asset paths live under `root`, so a test "node" can unpack with `tar -xPz`.
 */
export interface SiteOptions {
  site: string;
  redfishPort: number;
  nodes: string[];
  /** Directory under which every asset path lies. */
  root: string;
  username?: string;
  password?: string;
}

export function siteDesign(o: SiteOptions): string {
  const nodes = o.nodes
    .map(
      (name, i) => `---
schema: drydock/BaremetalNode/v1
metadata:
  schema: metadata/Document/v1
  name: ${name}
data:
  host_profile: sim
  addressing:
    - network: oob
      address: 127.0.0.${11 + i}
    - network: pxe
      address: 10.20.0.${11 + i}
  metadata:
    rack: rack1
    boot_mac: 52:54:00:5e:00:${(0x10 + i).toString(16)}
    tags:
      - ${i % 2 === 0 ? 'even' : 'odd'}
    owner_data:
      position: '${i + 1}'
      zone: z${i % 2}
`,
    )
    .join('');
  return `---
schema: drydock/Region/v1
metadata:
  schema: metadata/Document/v1
  name: ${o.site}
data:
  authorized_keys:
    - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlab operator@${o.site}
---
schema: drydock/Rack/v1
metadata:
  schema: metadata/Document/v1
  name: rack1
data:
  local_networks:
    - pxe
---
schema: drydock/Network/v1
metadata:
  schema: metadata/Document/v1
  name: oob
data:
  cidr: 127.0.0.0/24
---
schema: drydock/Network/v1
metadata:
  schema: metadata/Document/v1
  name: pxe
data:
  cidr: 10.20.0.0/24
  dns:
    domain: ${o.site}.example
---
schema: drydock/NetworkLink/v1
metadata:
  schema: metadata/Document/v1
  name: pxe-link
data:
  allowed_networks:
    - pxe
---
schema: drydock/HardwareProfile/v1
metadata:
  schema: metadata/Document/v1
  name: generic
data:
  vendor: Sim
  boot_mode: uefi
  bootstrap_protocol: pxe
---
schema: drydock/HostProfile/v1
metadata:
  schema: metadata/Document/v1
  name: sim
data:
  hardware_profile: generic
  primary_network: pxe
  oob:
    type: redfish
    network: oob
    account: ${o.username ?? 'admin'}
    credential: ${o.password ?? 'sim-secret'}
    port: ${o.redfishPort}
    scheme: http
    system_id: '1'
  interfaces:
    pxe:
      device_link: pxe-link
      slaves:
        - eno1
      networks:
        - pxe
${nodes}---
schema: drydock/BootAction/v1
metadata:
  schema: metadata/Document/v1
  name: install-agent
data:
  assets:
    - type: unit
      path: ${o.root}/etc/systemd/system/agent.service
      permissions: '444'
      data: |
        [Unit]
        Description=Agent for {{ node.hostname }} in {{ node.domain }}
        [Service]
        ExecStart=/usr/local/bin/agent --report {{ action.report_url }}{{ action.action_id }}
      data_pipeline:
        - utf8_decode
        - template
    - type: file
      path: ${o.root}/etc/agent/ip
      permissions: '640'
      data: '{{ node.network.pxe.ip }}'
      data_pipeline:
        - utf8_decode
        - template
---
schema: drydock/BootAction/v1
metadata:
  schema: metadata/Document/v1
  name: motd
data:
  signaling: false
  assets:
    - type: file
      path: ${o.root}/etc/motd
      data: V2VsY29tZQo=
      data_pipeline:
        - base64_decode
    - type: pkg_list
      data:
        curl: null
        jq: '1.6-2'
`;
}

/** The keys of a task object as upstream's code emits it (upstream-apis.md §1.3.2), in its order. */
export const DRYDOCK_TASK_KEYS = [
  'kind',
  'apiVersion',
  'task_id',
  'action',
  'parent_task_id',
  'design_ref',
  'status',
  'result',
  'node_filter',
  'subtask_id_list',
  'created',
  'created_by',
  'updated',
  'terminated',
  'terminated_by',
  'terminate',
  'retry',
] as const;
