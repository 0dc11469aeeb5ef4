import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { deployHook } from '../../agent/deploy-hook.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { IpmiDriver } from '../../agent/drivers/ipmi.ts';
import { describeFailure, type Executors, execute, parseJob, type VendorDriver } from '../../agent/executor.ts';
import { ImageCache } from '../../agent/images.ts';
import { NetbootService } from '../../agent/netboot.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { type RedfishSim, type SimSystemState, startRedfishSim } from '../../agent/sim/redfish.ts';
import { waitFor } from '../support/wait.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The agent's `deploy_node` job through `parseJob`/`execute` (deploy contract §6):
 *
 * - the hook method (the deploy hook gets the node's boot-action info, then a one-time PXE boot
 *   and a power cycle) against the Redfish simulator and against real `ipmitool` talking to
 *   `ipmi_sim`; the hooks are real processes run by the agent's own `deployHook`;
 * - the image method against the Redfish simulator, the agent's boot service and image cache,
 *   with the test playing the node's ramdisk over HTTP (the VM tests boot the real one);
 * - the refusals: no image and no hook, an image not in the catalog, an image whose sha256 does
 *   not match, an image deploy of a node with no known MAC (never a discovery) — all before any
 *   BMC call;
 * - Ironic's deploy (issue 14): an `image_url` with its sha256 fetched over HTTP through the
 *   agent's URL policy, the job's `configdrive` in the served tar, `require_image` never falling
 *   back to the hook, and their refusals before any BMC call.
 */

const USER = 'admin';
const PASS = 'deploy-sim-pass';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-deploy-node-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let fileSeq = 0;
const tempFile = (name: string) => join(dir, `${name}-${++fileSeq}`);

/** What the workflow puts in a deploy_node job for a node with boot actions (the key already opened). */
function bootaction(node = 'n01') {
  return {
    node_name: node,
    task_id: '4f5c8f0e-3b3c-4b7e-9f6e-0c9a3a1b2c3d',
    action_key: randomBytes(32).toString('hex'),
    report_url: 'http://127.0.0.1:9/api/v1.0/bootactions/',
    packages: [['curl', null], ['jq', '1.6-2']],
    actions: [{ action_id: '01HX0000000000000000000000', action_name: 'install-agent', action_status: 'incomplete' }],
  };
}


/** A deploy hook that has nothing to do (the job runs none for a node without boot actions). */
const okHook = async () => ({ exit_code: 0 });

/** Running (a killed process whose parent died is a zombie until init reaps it: that counts as gone). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

// ---------------------------------------------------------------------------------------------

describe('deploy_node over Redfish (simulator)', () => {
  let sim: RedfishSim;
  afterEach(async () => {
    await sim?.stop();
  });

  // The agent's production driver factory, with loopback-fast timings.
  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 5000 } });
  const executors = (extra: Partial<Executors> = {}): Executors => ({ makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, ...extra });

  async function node(): Promise<RedfishSim> {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On', powerDelayMs: 100 }] });
    return sim;
  }
  const job = (extra: Record<string, unknown> = {}) =>
    parseJob('deploy_node', { driver: 'redfish', driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS }, ...extra });

  it('with a deploy hook: sets a one-time PXE boot override, then power-cycles the node', async () => {
    const s = await node();
    const out = await execute(job(), executors({ deployHook: okHook }));
    expect(out).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on' });
    const st = s.state('1');
    expect(st.patches).toEqual([{ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }]);
    expect(st.resets).toEqual(['ForceRestart']);
    expect(st.PowerState).toBe('On');
    // The sim consumes a one-time override at the next power-on: Disabled again proves the
    // override was set before the cycle (set after it, it would still read Once).
    expect(st).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Disabled' });
  });

  it('powers on a node that is off (the cycle of an off node) after the override', async () => {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off', powerDelayMs: 50 }] });
    expect(await execute(job(), executors({ deployHook: okHook }))).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on' });
    expect(sim.state('1')).toMatchObject({ PowerState: 'On', resets: ['On'], BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'Pxe' });
  });

  it('hands the boot-action info to the deploy hook on stdin before it touches the BMC', async () => {
    const s = await node();
    const file = tempFile('hook');
    const hook = deployHook({ command: ['sh', '-c', `cat > '${file}'`], timeout_seconds: 5 });
    let atHook: SimSystemState | undefined;
    const info = bootaction();
    const out = await execute(
      job({ bootaction: info }),
      executors({
        deployHook: async (i) => {
          const r = await hook(i);
          atHook = s.state('1'); // the BMC as the hook left it
          return r;
        },
      }),
    );
    expect(out).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on', hook: { exit_code: 0 } });
    const stdin = readFileSync(file, 'utf8');
    expect(stdin.endsWith('\n')).toBe(true);
    expect(JSON.parse(stdin)).toEqual(info);
    expect(atHook).toMatchObject({ PowerState: 'On', patches: [], resets: [] });
    expect(s.state('1').resets).toEqual(['ForceRestart']);
  });

  it('runs no hook for a node without boot actions', async () => {
    await node();
    const file = tempFile('unused');
    const out = await execute(job(), executors({ deployHook: deployHook({ command: ['sh', '-c', `cat > '${file}'`], timeout_seconds: 5 }) }));
    expect(out).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on' });
    expect(existsSync(file)).toBe(false);
  });

  it('fails the job with the exit code of a failing hook and leaves the BMC untouched', async () => {
    const s = await node();
    const hook = deployHook({ command: ['sh', '-c', 'cat > /dev/null; echo "installer not ready" >&2; exit 3'], timeout_seconds: 5 });
    const err = await rejection(execute(job({ bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(err.name).toBe('DeployHookError');
    expect(describeFailure(err)).toBe('deploy hook sh exited 3: installer not ready');
    expect(s.state('1')).toMatchObject({ PowerState: 'On', patches: [], resets: [], BootSourceOverrideTarget: 'None' });
  });

  it('kills a hook that hangs at its timeout, with its children, fails the job and leaves the BMC untouched', async () => {
    const s = await node();
    const pidFile = tempFile('pid');
    const childFile = tempFile('child');
    // A shell script whose child hangs: the kill at the deadline must reach the child too.
    const hook = deployHook({ command: ['sh', '-c', `echo $$ > '${pidFile}'; sleep 30 & echo $! > '${childFile}'; wait`], timeout_seconds: 1 });
    const started = Date.now();
    const err = await rejection(execute(job({ bootaction: bootaction() }), executors({ deployHook: hook })));
    const took = Date.now() - started;
    expect(describeFailure(err)).toBe('deploy hook sh was killed after 1 s (timed out)');
    // Not a speed target: the hook's own sleep would hold the job for 30 s.
    expect(took).toBeLessThan(15_000);
    for (const f of [pidFile, childFile]) {
      const pid = Number(readFileSync(f, 'utf8').trim());
      expect(pid).toBeGreaterThan(1);
      // SIGKILL is delivered at once but a busy machine may not have scheduled the orphaned
      // `sleep` to die yet when the job fails: allow it moments, far short of its own 30 s.
      await waitFor(`hook process ${pid} gone`, async () => !alive(pid), 5_000, 20);
    }
    expect(s.state('1')).toMatchObject({ patches: [], resets: [] });
  });

  it('names a hook that cannot be started', async () => {
    const s = await node();
    const hook = deployHook({ command: [join(dir, 'no-such-hook')], timeout_seconds: 5 });
    const err = await rejection(execute(job({ bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(describeFailure(err)).toMatch(/^deploy hook .*no-such-hook could not run: spawn .*ENOENT/);
    expect(s.state('1')).toMatchObject({ patches: [], resets: [] });
  });
});

// ---------------------------------------------------------------------------------------------

describe('deploy_node over IPMI (ipmitool + ipmi_sim)', () => {
  let sim: IpmiSim | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  /** ipmitool commands the driver ran, without the connection options. */
  let commands: string[];
  const executors = (extra: Partial<Executors> = {}): Executors => ({
    makeDriver: (driver, info): VendorDriver => {
      expect(driver).toBe('ipmi');
      const d = new IpmiDriver({
        address: String(info.ipmi_address),
        port: Number(info.ipmi_port),
        username: String(info.ipmi_username),
        password: String(info.ipmi_password),
        minCommandIntervalMs: 0,
        pollIntervalMs: 100,
        powerTimeoutMs: 5000,
        timeoutSeconds: 5,
        onCommand: (e) => commands.push(e.args.slice(e.args.indexOf('-v') + 1).join(' ')),
      });
      return Object.assign(d, {
        vendor: async () => {
          throw new Error('no vendor methods in these tests');
        },
      });
    },
    ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 },
    ...extra,
  });

  async function node(): Promise<IpmiSim> {
    commands = [];
    sim = await startIpmiSim({ username: USER, password: 'ipmi-pass', powerOn: true });
    return sim;
  }
  const job = (s: IpmiSim, extra: Record<string, unknown> = {}) =>
    parseJob('deploy_node', { driver: 'ipmi', driver_info: { ipmi_address: s.address, ipmi_port: s.port, ipmi_username: s.username, ipmi_password: s.password }, ...extra });

  it('with a deploy hook: sets PXE for the next boot only, then power-cycles the node', async () => {
    const s = await node();
    expect(await execute(job(s), executors({ deployHook: okHook }))).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on' });
    // On the wire: a one-time bootdev (no options=persistent) before the one power cycle.
    const bootdev = commands.indexOf('chassis bootdev pxe');
    const cycle = commands.indexOf('chassis power cycle');
    expect(bootdev).toBeGreaterThanOrEqual(0);
    expect(cycle).toBeGreaterThan(bootdev);
    expect(commands.filter((c) => c.startsWith('chassis bootdev'))).toEqual(['chassis bootdev pxe']);
    expect(commands.filter((c) => c === 'chassis power cycle')).toHaveLength(1);
    // What the BMC was asked, in order: boot from PXE, then off and on again.
    expect(s.events().lines).toEqual(['boot pxe', 'power 0', 'power 1']);
    expect(s.state()).toEqual({ power: 'on', boot: 'pxe' });
  });

  it('runs the hook with the boot-action info first, then the BMC', async () => {
    const s = await node();
    const file = tempFile('ipmi-hook');
    const hook = deployHook({ command: ['sh', '-c', `cat > '${file}'`], timeout_seconds: 5 });
    let linesAtHook: string[] | undefined;
    const info = bootaction('n07');
    const out = await execute(
      job(s, { bootaction: info }),
      executors({
        deployHook: async (i) => {
          const r = await hook(i);
          linesAtHook = s.events().lines;
          return r;
        },
      }),
    );
    expect(out).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on', hook: { exit_code: 0 } });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(info);
    expect(linesAtHook).toEqual([]);
    expect(s.events().lines).toEqual(['boot pxe', 'power 0', 'power 1']);
  });

  it('sends nothing to the BMC when the hook fails', async () => {
    const s = await node();
    const hook = deployHook({ command: ['sh', '-c', 'exit 42'], timeout_seconds: 5 });
    const err = await rejection(execute(job(s, { bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(describeFailure(err)).toBe('deploy hook sh exited 42');
    expect(commands).toEqual([]);
    expect(s.events().lines).toEqual([]);
    expect(s.state().power).toBe('on');
  });
});

// ---------------------------------------------------------------------------------------------

describe('deploy_node: which method, and the refusals', () => {
  let sim: RedfishSim;
  afterEach(async () => {
    await sim?.stop();
  });
  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 5000 } });
  const base = (): Executors => ({ makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 } });
  const job = (extra: Record<string, unknown> = {}) =>
    parseJob('deploy_node', { driver: 'redfish', driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS }, ...extra });
  const untouched = { PowerState: 'On', patches: [], resets: [], BootSourceOverrideTarget: 'None' };

  it('fails without an image and without a hook, leaving the BMC untouched', async () => {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] });
    const err = await rejection(execute(job({ bootaction: bootaction() }), base()));
    expect(describeFailure(err)).toBe('cannot deploy: the design names no platform.image and the agent has no deploy_hook');
    expect(sim.state('1')).toMatchObject(untouched);
  });

  it('fails for an image not in the catalog when there is no hook, naming it', async () => {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] });
    const err = await rejection(execute(job({ image: 'ubuntu-24.04' }), base()));
    expect(describeFailure(err)).toBe('cannot deploy: the site has no image "ubuntu-24.04" (netboot.images) and no deploy_hook');
    expect(sim.state('1')).toMatchObject(untouched);
  });

  it('runs the hook for an image not in the catalog when there is one', async () => {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On', powerDelayMs: 20 }] });
    expect(await execute(job({ image: 'ubuntu-24.04' }), { ...base(), deployHook: okHook })).toEqual({ method: 'hook', boot_device: 'pxe', power_state: 'power on' });
  });

  it('checks the new fields', () => {
    sim = undefined as unknown as RedfishSim;
    const p = { driver: 'redfish', driver_info: {} };
    expect(parseJob('deploy_node', { ...p, macs: ['52-54-00-AA-00-01'], image: 'debian', hostname: 'n01.example.com', root_device: '/dev/vda', timeout_seconds: 600 }).payload).toMatchObject({
      macs: ['52:54:00:aa:00:01'],
      image: 'debian',
      hostname: 'n01.example.com',
      root_device: '/dev/vda',
    });
    expect(() => parseJob('deploy_node', { ...p, macs: ['zz'] })).toThrow(/^job deploy_node: macs\.0: not a MAC address$/);
    expect(() => parseJob('deploy_node', { ...p, hostname: 'n01\nx' })).toThrow(/hostname/);
    expect(() => parseJob('deploy_node', { ...p, root_device: 'vda' })).toThrow(/root_device/);
    expect(() => parseJob('deploy_node', { ...p, image: '' })).toThrow(/image/);
    expect(() => parseJob('deploy_node', { ...p, bootdata_url: 'ftp://x/y' })).toThrow(/bootdata_url/);
    expect(() => parseJob('deploy_node', { ...p, timeout_seconds: 0 })).toThrow(/timeout_seconds/);
  });
});

describe('deploy_node: image deploy (Redfish simulator, boot service; the test plays the ramdisk)', () => {
  const MAC = '52:54:00:de:00:01';
  const IMG = Buffer.concat([Buffer.from('slipway deploy image\n'), randomBytes(200_000)]);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const RELEASE_SHA = sha(Buffer.from('the release the catalog names'));
  let sim: RedfishSim | undefined;
  let netboot: NetbootService;
  let images: ImageCache;
  let nbBase: string;
  let srcUrl: string;
  /** The lessee's image server (Ironic image_source URLs): `/ironic/<name>`, hits counted. */
  const IMG2 = Buffer.concat([Buffer.from('slipway ironic image\n'), randomBytes(150_000)]);
  let imgServer: Server;
  let imgBase: string;
  const imgHits: string[] = [];

  beforeAll(async () => {
    imgServer = createServer((req, res) => {
      imgHits.push(req.url ?? '');
      if (req.url?.startsWith('/ironic/img2.raw')) return res.writeHead(200, { 'Content-Length': String(IMG2.length) }).end(IMG2);
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => imgServer.listen(0, '127.0.0.1', r));
    imgBase = `http://127.0.0.1:${(imgServer.address() as AddressInfo).port}`;
    const src = join(dir, 'image.raw');
    writeFileSync(src, IMG);
    srcUrl = pathToFileURL(src).toString();
    const corrupt = join(dir, 'corrupt.raw');
    writeFileSync(corrupt, Buffer.concat([IMG.subarray(0, 1000), Buffer.from('!'), IMG.subarray(1001)]));
    images = new ImageCache({
      dir: join(dir, 'cache'),
      // `corrupt`: what the catalog says (the hash of a release) is not what the URL serves.
      images: { debian: { url: srcUrl, sha256: sha(IMG) }, corrupt: { url: pathToFileURL(corrupt).toString(), sha256: RELEASE_SHA } },
      // The site allows its lessees' image server (plain http: a lab).
      urlPrefixes: [`${imgBase}/ironic/`],
    });
    netboot = new NetbootService({ host: '127.0.0.1', port: 0, publicUrl: 'http://10.0.2.100:8080', kernel: join(dir, 'k'), initramfs: join(dir, 'i'), images });
    await netboot.start();
    nbBase = `http://127.0.0.1:${netboot.address.port}`;
  });
  afterAll(async () => {
    await netboot?.stop();
    imgServer?.closeAllConnections();
    await new Promise<void>((r) => (imgServer ? imgServer.close(() => r()) : r()));
  });
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 30000 } });
  const executors = (extra: Partial<Executors> = {}): Executors => ({
    makeDriver: driverFactory({ ...cfg, token: 'unused-token' }),
    ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 },
    netboot,
    images,
    ...extra,
  });
  const job = (s: RedfishSim, extra: Record<string, unknown> = {}) =>
    parseJob('deploy_node', {
      driver: 'redfish',
      driver_info: { redfish_address: s.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS },
      node_id: 'node-1',
      macs: [MAC],
      image: 'debian',
      hostname: 'n01',
      timeout_seconds: 20,
      ...extra,
    });

  /** What the ramdisk does: fetch its script (until the agent registered it), then its instructions. */
  async function ramdisk(): Promise<{ callback: string; instructions: Record<string, string> }> {
    for (let i = 0; i < 400; i++) {
      const text = await (await fetch(`${nbBase}/boot/${MAC}.ipxe`)).text();
      const m = /slipway\.callback=http:\/\/10\.0\.2\.100:8080(\/callback\/\S+) slipway\.step=deploy slipway\.deploy=http:\/\/10\.0\.2\.100:8080(\/deploy\/\S+) /.exec(text);
      if (m) {
        const res = await fetch(`${nbBase}${m[2]}`);
        expect(res.status).toBe(200);
        const instructions = Object.fromEntries((await res.text()).trimEnd().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
        return { callback: m[1]!, instructions };
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${MAC} never got the deploy script`);
  }
  const local = (u: string) => u.replace('http://10.0.2.100:8080', nbBase);
  const report = (callback: string, body: object) => fetch(`${nbBase}${callback}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  /** The ramdisk's `poweroff -f`, as the BMC sees it. */
  const poweroff = (s: RedfishSim) =>
    fetch(`${s.url}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}` },
      body: JSON.stringify({ ResetType: 'ForceOff' }),
    });
  // The simulator's power-cycle settles after its delay; on a loaded machine that can be after the
  // test's report, and the agent would then see the machine off before the "ramdisk" turned it off.
  const ramdiskRunning = (s: RedfishSim) => waitFor('the ramdisk machine on', async () => s.state('1').PowerState === 'On', 10_000, 10);
  const good = (over: Record<string, unknown> = {}) => ({ step: 'deploy', root_device: '/dev/vda', root_filesystem: '/dev/vda1', image_sha256: sha(IMG), written_bytes: IMG.length, write_seconds: 0.5, configdrive: 'nocloud', bootif: MAC, ...over });

  it('fetches the image, boots the ramdisk to write it, then boots the node from its disk', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On', powerDelayMs: 20 }] }));
    const info = bootaction('n01');
    const running = execute(job(s, { bootaction: info, bootdata_url: 'http://10.0.2.2:9000/api/v1.0/bootactions/nodes/n01', root_device: '/dev/vda' }), executors());
    const { callback, instructions } = await ramdisk();
    expect(instructions).toEqual({
      image_url: `http://10.0.2.100:8080/images/${sha(IMG)}`,
      image_sha256: sha(IMG),
      image_size: String(IMG.length),
      configdrive_url: expect.stringMatching(/^http:\/\/10\.0\.2\.100:8080\/configdrive\/[A-Za-z0-9_-]+\.tar$/),
      root_device: '/dev/vda',
    });
    const image = Buffer.from(await (await fetch(local(instructions.image_url!))).arrayBuffer());
    expect(image.equals(IMG)).toBe(true);
    const drive = await fetch(local(instructions.configdrive_url!));
    expect(drive.status).toBe(200);
    const tar = Buffer.from(await drive.arrayBuffer());
    // The key went into the config drive (its bootaction file), as the node will read it.
    expect(tar.includes(Buffer.from(`action_key=${info.action_key}\n`))).toBe(true);
    expect(tar.includes(Buffer.from('packages=curl jq=1.6-2\n'))).toBe(true);
    // While the ramdisk runs: PXE once, power-cycled; nothing else yet. The agent registers the
    // node's boot files before it touches the BMC, and this "ramdisk" fetched them at once, which a
    // real one could only do after the power-cycle: wait for the agent's reset.
    await waitFor('the power-cycle', async () => s.state('1').resets.length > 0, 10_000, 10);
    expect(s.state('1')).toMatchObject({ resets: ['ForceRestart'], patches: [{ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }] });
    // A ramdisk reports only once its machine runs (the power-cycle has settled).
    await ramdiskRunning(s);
    expect((await report(callback, good())).status).toBe(204);
    await poweroff(s);
    expect(await running).toEqual({
      method: 'image',
      image: 'debian',
      image_sha256: sha(IMG),
      root_device: '/dev/vda',
      root_filesystem: '/dev/vda1',
      written_bytes: IMG.length,
      write_seconds: 0.5,
      boot_device: 'disk',
      power_state: 'power on',
    });
    const st = s.state('1');
    expect(st.resets).toEqual(['ForceRestart', 'ForceOff', 'On']);
    expect(st.patches).toEqual([
      { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } },
      { Boot: { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' } },
    ]);
    expect(st).toMatchObject({ PowerState: 'On', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
    // Done: the registration is gone, the machine boots locally if it network-boots.
    expect(await (await fetch(`${nbBase}/boot/${MAC}.ipxe`)).text()).toMatch(/\nexit\n$/);
  });

  it('forces off a node that does not power itself off after its report, then boots it from disk', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const running = execute(job(s), executors({ ramdiskPowerOffWaitMs: 300 }));
    const { callback } = await ramdisk();
    expect((await report(callback, good())).status).toBe(204);
    expect(await running).toMatchObject({ method: 'image', boot_device: 'disk', power_state: 'power on' });
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: ['On', 'ForceOff', 'On'], BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
  });

  it("fails with the ramdisk's error verbatim, powered off, never set to boot from disk", async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const running = execute(job(s), executors()).catch((e: unknown) => e);
    const { callback } = await ramdisk();
    const error = `image written to /dev/vda does not match its sha256 (expected ${sha(IMG)}, read ${'0'.repeat(64)})`;
    expect((await report(callback, { step: 'deploy', error })).status).toBe(204);
    const err = await running;
    expect(describeFailure(err)).toBe(error);
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
    expect(s.state('1').patches).toHaveLength(1);
  });

  it('fails when the ramdisk reports another image than it was sent', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const running = execute(job(s), executors()).catch((e: unknown) => e);
    const { callback } = await ramdisk();
    expect((await report(callback, good({ image_sha256: 'f'.repeat(64) }))).status).toBe(204);
    expect(describeFailure(await running)).toBe(
      `the ramdisk reported writing ${IMG.length} bytes of image ${'f'.repeat(64)} to /dev/vda, not the ${IMG.length} bytes of ${sha(IMG)} (image "debian") it was sent`,
    );
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
  });

  it('fails an image whose sha256 does not match before any BMC call', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const err = await rejection(execute(job(s, { image: 'corrupt' }), executors()));
    expect(describeFailure(err)).toMatch(new RegExp(`^image "corrupt": sha256 mismatch \\(expected ${RELEASE_SHA}, got [0-9a-f]{64}\\) from file:///.*/corrupt\\.raw$`));
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [], patches: [], BootSourceOverrideTarget: 'None' });
    // Nothing registered: the MAC boots locally.
    expect(await (await fetch(`${nbBase}/boot/${MAC}.ipxe`)).text()).toMatch(/\nexit\n$/);
  });

  it('refuses an image deploy of a node with no known MAC (never a discovery) before anything else', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    // Checked first: not even the image is fetched (this catalog's source does not exist).
    const unfetched = new ImageCache({ dir: join(dir, 'unfetched'), images: { debian: { url: pathToFileURL(join(dir, 'no-such.raw')).toString(), sha256: sha(IMG) } } });
    for (const macs of [[], undefined]) {
      const err = await rejection(execute(job(s, { macs, bootaction: bootaction() }), executors({ images: unfetched })));
      expect(describeFailure(err)).toBe('cannot deploy node node-1: it has no known MAC address (no Ironic ports; inspect it first, e.g. Drydock prepare_nodes)');
    }
    // Without a node_id, the host name names the node.
    const named = await rejection(execute(job(s, { macs: [], node_id: undefined, hostname: 'n07' }), executors()));
    expect(describeFailure(named)).toBe('cannot deploy node n07: it has no known MAC address (no Ironic ports; inspect it first, e.g. Drydock prepare_nodes)');
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [], patches: [], BootSourceOverrideTarget: 'None' });
    // No discovery was registered: an unknown machine that network-boots is told to boot locally.
    expect(await (await fetch(`${nbBase}/boot/52:54:00:99:99:99.ipxe`)).text()).toMatch(/\nexit\n$/);
  });

  it('refuses to clean a node with no known MAC (never a discovery: an unknown machine would be erased)', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const clean = parseJob('clean', { driver: 'redfish', driver_info: { redfish_address: s.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS }, node_id: 'node-1', macs: [] });
    const err = await rejection(execute(clean, executors()));
    expect(describeFailure(err)).toBe('cannot clean node node-1: it has no known MAC address (no Ironic ports; inspect it first)');
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [], patches: [] });
    expect(await (await fetch(`${nbBase}/boot/52:54:00:99:99:98.ipxe`)).text()).toMatch(/\nexit\n$/);
  });

  it('refuses a boot-action info it cannot put in the config drive before any BMC call', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const err = await rejection(execute(job(s, { bootaction: { ...bootaction(), report_url: 'http://x/\nnode_name=evil' } }), executors()));
    expect(describeFailure(err)).toBe('invalid job: job deploy_node: config drive: bootaction.report_url contains a newline or another control character');
    const keyErr = await rejection(execute(job(s, { bootaction: { ...bootaction(), action_key: 'not hex, secret' } }), executors()));
    expect(describeFailure(keyErr)).toBe('invalid job: job deploy_node: bootaction.action_key: hex');
    expect(s.state('1')).toMatchObject({ resets: [], patches: [] });
  });

  it('times out with a clear error, powered off and unregistered', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const err = await rejection(execute(job(s, { timeout_seconds: 1 }), executors()));
    expect(describeFailure(err)).toBe("deploy timed out after 1 s: the node never reported (does it boot from the network and reach the agent's boot service?)");
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
  });
  // --- Ironic (issue 14) -------------------------------------------------------------------------

  /** An Ironic deploy's payload: no image name, the image_source URL and its checksum. */
  const ironic = (s: RedfishSim, extra: Record<string, unknown> = {}) =>
    job(s, { image: undefined, hostname: 'web1', require_image: true, image_url: `${imgBase}/ironic/img2.raw?temp_url_sig=secret`, image_sha256: sha(IMG2).toUpperCase(), ...extra });
  const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployNodeTestKey000000000000000000000000 lessee@laptop';
  /** The members of an uncompressed ustar. */
  const ustar = (tar: Buffer) => {
    const out: Record<string, { mode: number; text: string }> = {};
    for (let off = 0; off + 512 <= tar.length; ) {
      const h = tar.subarray(off, off + 512);
      if (h.every((b) => b === 0)) break;
      const str = (a: number, n: number) => h.subarray(a, a + n).toString('utf8').replace(/\0.*$/s, '');
      const size = Number.parseInt(str(124, 12), 8);
      out[str(0, 100)] = { mode: Number.parseInt(str(100, 8), 8), text: tar.subarray(off + 512, off + 512 + size).toString('utf8') };
      off += 512 + Math.ceil(size / 512) * 512;
    }
    return out;
  };

  it('deploys an image URL (Ironic): fetched and verified through the policy, the configdrive in the served tar; the hook never runs', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off', powerDelayMs: 20 }] }));
    const hookFile = tempFile('never-hook');
    const user_data = '#!/bin/sh\necho marker-$(hostname) > /root/marker\n';
    const configdrive = { meta_data: { uuid: 'c0ffee00-0000-4000-8000-000000000001', public_keys: { k1: KEY } }, user_data, network_data: { links: [] } };
    const before = imgHits.length;
    const running = execute(
      ironic(s, { configdrive, root_device: '/dev/vda' }),
      executors({ deployHook: deployHook({ command: ['sh', '-c', `cat > '${hookFile}'`], timeout_seconds: 5 }) }),
    );
    const { callback, instructions } = await ramdisk();
    expect(imgHits.slice(before)).toEqual(['/ironic/img2.raw?temp_url_sig=secret']);
    expect(instructions).toMatchObject({ image_url: `http://10.0.2.100:8080/images/${sha(IMG2)}`, image_sha256: sha(IMG2), image_size: String(IMG2.length), root_device: '/dev/vda' });
    // The boot service serves the verified bytes from the cache.
    expect(Buffer.from(await (await fetch(local(instructions.image_url!))).arrayBuffer()).equals(IMG2)).toBe(true);
    const tar = Buffer.from(await (await fetch(local(instructions.configdrive_url!))).arrayBuffer());
    const m = ustar(tar);
    expect(Object.keys(m)).toEqual([
      'var/lib/cloud/seed/nocloud/meta-data',
      'var/lib/cloud/seed/nocloud/user-data',
      'var/lib/cloud/seed/nocloud/network-config',
      'etc/slipway/meta_data.json',
      'etc/slipway/user-data',
    ]);
    expect(JSON.parse(m['var/lib/cloud/seed/nocloud/meta-data']!.text)).toEqual({ 'instance-id': 'node-1', 'local-hostname': 'web1', 'public-keys': [KEY] });
    expect(m['var/lib/cloud/seed/nocloud/user-data']).toEqual({ mode: 0o600, text: user_data });
    expect(JSON.parse(m['etc/slipway/meta_data.json']!.text)).toEqual(configdrive.meta_data);
    await ramdiskRunning(s);
    expect((await report(callback, good({ image_sha256: sha(IMG2), written_bytes: IMG2.length }))).status).toBe(204);
    await poweroff(s);
    expect(await running).toEqual({
      method: 'image',
      image: `${imgBase}/ironic/img2.raw?…`,
      image_sha256: sha(IMG2),
      root_device: '/dev/vda',
      root_filesystem: '/dev/vda1',
      written_bytes: IMG2.length,
      write_seconds: 0.5,
      boot_device: 'disk',
      power_state: 'power on',
    });
    expect(existsSync(hookFile)).toBe(false);
    expect(s.state('1')).toMatchObject({ PowerState: 'On', BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
    // A second deploy of the same image (a rebuild) is not downloaded again: the cache is keyed by sha256.
    const again = execute(ironic(s, { image_url: `${imgBase}/ironic/img2.raw?another=sig` }), executors({ ramdiskPowerOffWaitMs: 200 }));
    const second = await ramdisk();
    expect((await report(second.callback, good({ image_sha256: sha(IMG2), written_bytes: IMG2.length }))).status).toBe(204);
    expect(await again).toMatchObject({ method: 'image', image_sha256: sha(IMG2) });
    expect(imgHits.slice(before)).toHaveLength(1);
  });

  it("refuses an image URL the agent's policy does not allow before any fetch or BMC call", async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const before = imgHits.length;
    for (const [url, display] of [
      [`${imgBase}/private/img2.raw`, `${imgBase}/private/img2.raw`],
      [`${imgBase}/ironic/../private/img2.raw`, `${imgBase}/private/img2.raw`],
      ['https://user:pw@images.example.com/img.raw?sig=s', 'https://images.example.com/img.raw?…'],
    ] as const) {
      const err = await rejection(execute(ironic(s, { image_url: url }), executors()));
      expect(describeFailure(err)).toBe(`cannot deploy node node-1: image URL ${display} is not allowed by this agent (netboot.image_url_prefixes)`);
    }
    // The default policy (any https URL) refuses plain http.
    const strict = new ImageCache({ dir: join(dir, 'strict'), images: {} });
    const err = await rejection(execute(ironic(s), executors({ images: strict })));
    expect(describeFailure(err)).toBe(`cannot deploy node node-1: image URL ${imgBase}/ironic/img2.raw?… is not allowed by this agent (netboot.image_url_prefixes)`);
    expect(imgHits.length).toBe(before);
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [], patches: [], BootSourceOverrideTarget: 'None' });
    expect(await (await fetch(`${nbBase}/boot/${MAC}.ipxe`)).text()).toMatch(/\nexit\n$/);
  });

  it('refuses an image URL without a usable sha256 before any fetch or BMC call', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const before = imgHits.length;
    for (const image_sha256 of [undefined, 'd41d8cd98f00b204e9800998ecf8427e' /* an md5 image_checksum */, 'z'.repeat(64)]) {
      const err = await rejection(execute(ironic(s, { image_sha256 }), executors()));
      expect(describeFailure(err)).toBe('cannot deploy node node-1: an image URL needs its sha256 (instance_info image_checksum)');
    }
    // A sha256 the download does not match: the cache's error, still before the BMC.
    const wrong = sha(Buffer.from('not img2'));
    const err = await rejection(execute(ironic(s, { image_sha256: wrong }), executors()));
    expect(describeFailure(err)).toBe(`image "${imgBase}/ironic/img2.raw?…": sha256 mismatch (expected ${wrong}, got ${sha(IMG2)}) from ${imgBase}/ironic/img2.raw?…`);
    expect(imgHits.length).toBe(before + 1);
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [], patches: [], BootSourceOverrideTarget: 'None' });
  });

  it('require_image: without a catalog image or a URL it fails, and never runs the hook, even when one is configured', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const hookFile = tempFile('require-image-hook');
    const hook = deployHook({ command: ['sh', '-c', `cat > '${hookFile}'`], timeout_seconds: 5 });
    const notInCatalog = await rejection(execute(job(s, { image: 'ubuntu-24.04', require_image: true, bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(describeFailure(notInCatalog)).toBe('cannot deploy node node-1: instance_info has no image_source the site can use (image "ubuntu-24.04" is not in the agent\'s catalog)');
    const none = await rejection(execute(job(s, { image: undefined, require_image: true, bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(describeFailure(none)).toBe('cannot deploy node node-1: instance_info has no image_source the site can use (no image given)');
    // No netboot section (so no catalog): the same refusal, never the hook.
    const bare = await rejection(execute(job(s, { require_image: true }), executors({ deployHook: hook, netboot: undefined, images: undefined })));
    expect(describeFailure(bare)).toBe('cannot deploy node node-1: instance_info has no image_source the site can use (image "debian" is not in the agent\'s catalog)');
    expect(existsSync(hookFile)).toBe(false);
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [], patches: [], BootSourceOverrideTarget: 'None' });
    // A catalog image with require_image is an ordinary image deploy.
    const running = execute(job(s, { require_image: true }), executors({ deployHook: hook, ramdiskPowerOffWaitMs: 200 }));
    const { callback } = await ramdisk();
    expect((await report(callback, good())).status).toBe(204);
    expect(await running).toMatchObject({ method: 'image', image: 'debian' });
    expect(existsSync(hookFile)).toBe(false);
  });

  it('checks the Ironic fields: bounded, http(s) only, one image source, config drive limits', () => {
    const p = { driver: 'redfish', driver_info: {} };
    const parsed = parseJob('deploy_node', { ...p, require_image: true, image_url: 'https://img.example/x.raw', image_sha256: 'AB'.repeat(32), configdrive: { meta_data: { hostname: 'web1', public_keys: { a: KEY } }, user_data: { packages: [] }, extra: 1 } }).payload;
    expect(parsed).toMatchObject({ require_image: true, image_url: 'https://img.example/x.raw', image_sha256: 'ab'.repeat(32), configdrive: { user_data: { packages: [] } } });
    expect((parsed as unknown as { configdrive: object }).configdrive).not.toHaveProperty('extra');
    const refused = (extra: Record<string, unknown>) => () => parseJob('deploy_node', { ...p, ...extra });
    expect(refused({ image_url: 'ftp://h/x.raw' })).toThrow(/^job deploy_node: image_url: an http\(s\) URL$/);
    expect(refused({ image_url: 'file:///etc/passwd' })).toThrow(/image_url/);
    expect(refused({ image_url: `https://h/${'x'.repeat(2048)}` })).toThrow(/image_url/);
    expect(refused({ image: 'debian', image_url: 'https://h/x' })).toThrow('image_url: image (a catalog name) and image_url are exclusive');
    expect(refused({ image_sha256: 'x'.repeat(257) })).toThrow(/image_sha256/);
    expect(refused({ require_image: 'yes' })).toThrow(/require_image/);
    expect(refused({ configdrive: 'base64-gzipped-iso' })).toThrow(/configdrive/);
    expect(refused({ configdrive: { user_data: 'x'.repeat(64 * 1024 + 1) } })).toThrow(/configdrive: \d+ bytes as JSON, more than the limit of 65536; configdrive\.user_data: 65537 bytes, more than the limit of 65536/);
    expect(refused({ configdrive: { meta_data: { blob: 'x'.repeat(64 * 1024) } } })).toThrow(/^job deploy_node: configdrive: \d+ bytes as JSON, more than the limit of 65536$/);
    expect(refused({ configdrive: { meta_data: { hostname: 'web 1' } } })).toThrow('configdrive.meta_data.hostname: a host name');
    expect(refused({ configdrive: { meta_data: { public_keys: { a: `${KEY}\nssh-rsa evil` } } } })).toThrow('configdrive.meta_data: public_keys[0] contains a newline or another control character');
    expect(refused({ configdrive: { network_data: [] } })).toThrow(/configdrive\.network_data/);
    expect(parseJob('deploy_node', { ...p, configdrive: { user_data: 'x'.repeat(60 * 1024) } }).payload).toHaveProperty('configdrive');
  });
});
