import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RedfishDriver, type RedfishDriverConfig } from '../../agent/drivers/redfish.ts';
import { BmcError } from '../../agent/drivers/types.ts';
import { type RedfishSim, type RedfishSimOptions, startRedfishSim } from '../../agent/sim/redfish.ts';

const run = promisify(execFile);

const USER = 'admin';
// Distinctive, so that a leak into any message is easy to find.
const PASS = 'Pa55-w0rd-zebra';
const basic = (user = USER, pass = PASS) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

async function sim(opts: Partial<RedfishSimOptions> = {}): Promise<RedfishSim> {
  const s = await startRedfishSim({ username: USER, password: PASS, ...opts });
  onTestFinished(() => s.stop());
  return s;
}

function driver(s: { url: string }, extra: Partial<RedfishDriverConfig> = {}): RedfishDriver {
  return new RedfishDriver({ address: s.url, username: USER, password: PASS, pollIntervalMs: 20, powerTimeoutMs: 5_000, timeoutMs: 2_000, ...extra });
}

async function bmcError(p: Promise<unknown>): Promise<BmcError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BmcError);
    return err as BmcError;
  }
  throw new Error('expected a BmcError, but the call succeeded');
}

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

// --- a throwaway self-signed certificate for the TLS tests -------------------------------------

let certDir: string;
let tls: { cert: string; key: string };

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'slipway-redfish-tls-'));
  const cert = join(certDir, 'cert.pem');
  const key = join(certDir, 'key.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  tls = { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
});

afterAll(() => {
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

// --- the simulator on the wire -----------------------------------------------------------------

describe('Redfish simulator', () => {
  it('serves /redfish and the service root without auth, with Redfish headers and links', async () => {
    const s = await sim();
    const versions = await fetch(`${s.url}/redfish`);
    expect(versions.status).toBe(200);
    expect(await versions.json()).toEqual({ v1: '/redfish/v1/' });

    const res = await fetch(`${s.url}/redfish/v1/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('odata-version')).toBe('4.0');
    const root = (await res.json()) as Record<string, unknown>;
    expect(root['@odata.type']).toMatch(/^#ServiceRoot\.v1_\d+_\d+\.ServiceRoot$/);
    expect(root).toMatchObject({
      '@odata.id': '/redfish/v1/',
      Id: expect.any(String),
      RedfishVersion: expect.stringMatching(/^1\.\d+\.\d+$/),
      Systems: { '@odata.id': '/redfish/v1/Systems' },
      Chassis: { '@odata.id': '/redfish/v1/Chassis' },
      Managers: { '@odata.id': '/redfish/v1/Managers' },
      SessionService: { '@odata.id': '/redfish/v1/SessionService' },
      AccountService: { '@odata.id': '/redfish/v1/AccountService' },
      EventService: { '@odata.id': '/redfish/v1/EventService' },
    });
  });

  it('answers 401 with a Basic challenge without or with wrong credentials, and the collection with them', async () => {
    const s = await sim({ systems: [{ id: 'a' }, { id: 'b' }] });
    for (const headers of [{}, { Authorization: basic(USER, 'nope') }, { Authorization: basic('root', PASS) }] as Record<string, string>[]) {
      const res = await fetch(`${s.url}/redfish/v1/Systems`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=".+"$/);
      expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/^Base\.1\.0\./);
    }
    const res = await fetch(`${s.url}/redfish/v1/Systems`, { headers: { Authorization: basic() } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      Members: [{ '@odata.id': '/redfish/v1/Systems/a' }, { '@odata.id': '/redfish/v1/Systems/b' }],
      'Members@odata.count': 2,
    });
  });

  it('answers 404 with a Redfish error body for an unknown path', async () => {
    const s = await sim();
    const res = await fetch(`${s.url}/redfish/v1/Systems/nope`, { headers: { Authorization: basic() } });
    expect(res.status).toBe(404);
    expect(res.headers.get('odata-version')).toBe('4.0');
    expect(await res.json()).toMatchObject({ error: { code: 'Base.1.0.ResourceMissingAtURI', message: expect.stringContaining('/redfish/v1/Systems/nope') } });
  });

  it('accepts a reset with 204 and changes PowerState only after the delay', async () => {
    const s = await sim({ systems: [{ id: '1', powerState: 'Off', powerDelayMs: 300 }] });
    const res = await fetch(`${s.url}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset`, {
      method: 'POST',
      headers: { Authorization: basic(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ ResetType: 'On' }),
    });
    expect(res.status).toBe(204);
    expect(s.state('1').PowerState).toBe('Off');
    await new Promise((r) => setTimeout(r, 450));
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: ['On'] });
  });

  it('rejects a ResetType outside the allowable values with 400 ActionParameterValueNotInList', async () => {
    const s = await sim({ systems: [{ id: '1', powerState: 'On', allowableResetTypes: ['On', 'ForceOff'] }] });
    const res = await fetch(`${s.url}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset`, {
      method: 'POST',
      headers: { Authorization: basic(), 'Content-Type': 'application/json' },
      body: JSON.stringify({ ResetType: 'ForceRestart' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; '@Message.ExtendedInfo': { MessageId: string; MessageArgs: string[] }[] } };
    expect(body.error.code).toBe('Base.1.0.ActionParameterValueNotInList');
    expect(body.error.message).toContain('ForceRestart');
    expect(body.error['@Message.ExtendedInfo'][0]).toMatchObject({ MessageId: 'Base.1.0.ActionParameterValueNotInList', MessageArgs: ['ForceRestart', 'ResetType'] });
    expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [] });
  });

  it('validates a Boot PATCH against the allowable values and changes nothing when it rejects it', async () => {
    const s = await sim({ systems: [{ id: '1', allowableBootTargets: ['None', 'Pxe', 'Hdd'] }] });
    const patch = (body: unknown) =>
      fetch(`${s.url}/redfish/v1/Systems/1`, { method: 'PATCH', headers: { Authorization: basic(), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

    const bad = await patch({ Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Once' } });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: 'Base.1.0.PropertyValueNotInList' } });
    expect((await patch({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Sometimes' } })).status).toBe(400);
    expect((await patch({ Boot: { BootOrder: ['Pxe'] } })).status).toBe(400);
    expect((await patch({ AssetTag: 'x' })).status).toBe(400);
    expect(s.state('1')).toMatchObject({ BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled', patches: [] });

    const good = await patch({ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' } });
    expect(good.status).toBe(204);
    expect(s.state('1')).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' });
  });

  it('issues a session token that works until the session is deleted', async () => {
    const s = await sim();
    const login = (UserName: string, Password: string) =>
      fetch(`${s.url}/redfish/v1/SessionService/Sessions`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ UserName, Password }) });

    expect((await login(USER, 'wrong')).status).toBe(401);
    const res = await login(USER, PASS);
    expect(res.status).toBe(201);
    const token = res.headers.get('x-auth-token');
    const location = res.headers.get('location');
    expect(token).toBeTruthy();
    expect(location).toMatch(/^\/redfish\/v1\/SessionService\/Sessions\/.+/);

    expect((await fetch(`${s.url}/redfish/v1/Systems`, { headers: { 'X-Auth-Token': token! } })).status).toBe(200);
    expect((await fetch(`${s.url}/redfish/v1/Systems`, { headers: { 'X-Auth-Token': 'forged' } })).status).toBe(401);
    expect((await fetch(`${s.url}${location}`, { method: 'DELETE', headers: { 'X-Auth-Token': token! } })).status).toBe(204);
    expect((await fetch(`${s.url}/redfish/v1/Systems`, { headers: { 'X-Auth-Token': token! } })).status).toBe(401);
  });
});

// --- the driver against the simulator ----------------------------------------------------------

describe('RedfishDriver', () => {
  describe('discovery', () => {
    it('lists the systems with their power state, manufacturer and model', async () => {
      const s = await sim({
        systems: [
          { id: 'node-1', powerState: 'On', manufacturer: 'Dell Inc.', model: 'PowerEdge R650', name: 'rack1-u3' },
          { id: 'node-2', powerState: 'Off' },
        ],
      });
      expect(await driver(s).listSystems()).toEqual([
        { id: 'node-1', name: 'rack1-u3', power_state: 'power on', manufacturer: 'Dell Inc.', model: 'PowerEdge R650' },
        { id: 'node-2', name: 'System node-2', power_state: 'power off', manufacturer: 'Slipway', model: 'Redfish Simulator' },
      ]);
    });

    it('drives the first system without a systemId, the named one with it, and names a missing one', async () => {
      const s = await sim({ systems: [{ id: 'a', powerState: 'On' }, { id: 'b', powerState: 'Off' }] });
      expect(await driver(s).getPowerState()).toBe('power on');
      expect(await driver(s, { systemId: 'b' }).getPowerState()).toBe('power off');
      const err = await bmcError(driver(s, { systemId: 'c' }).getPowerState());
      expect(err.code).toBe('protocol');
      expect(err.message).toContain('has no system c');
    });
  });

  describe('power', () => {
    it('powers on and off, waiting through the BMC delay, with exactly On then ForceOff', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off', powerDelayMs: 300 }] });
      const d = driver(s, { pollIntervalMs: 50 });
      expect(await d.getPowerState()).toBe('power off');

      const [on, tOn] = await timed(d.setPowerState('power on'));
      expect(on).toBe('power on');
      expect(tOn).toBeGreaterThanOrEqual(290);
      expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: ['On'] });

      const [off, tOff] = await timed(d.setPowerState('power off'));
      expect(off).toBe('power off');
      expect(tOff).toBeGreaterThanOrEqual(290);
      expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
      expect(await d.getPowerState()).toBe('power off');
    });

    it('sends nothing when the system is already in the requested state', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'On' }] });
      expect(await driver(s).setPowerState('power on')).toBe('power on');
      expect(s.state('1').resets).toEqual([]);
    });

    it('powers a system it has seen before with one action and one read-back, nothing read first', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off' }] });
      const sent = (from: number) => s.requests().slice(from).map((r) => `${r.method} ${r.path}`);
      // The first job on a BMC finds the system (service root, Systems, the system) and, being off
      // already, sends nothing.
      expect(await driver(s, { systemId: '1' }).setPowerState('power off')).toBe('power off');
      expect(s.state('1').resets).toEqual([]);
      // The next jobs (each a new driver, as the agent makes them) send the action and read it back.
      let from = s.requests().length;
      expect(await driver(s, { systemId: '1' }).setPowerState('power on')).toBe('power on');
      expect(sent(from)).toEqual(['POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset', 'GET /redfish/v1/Systems/1']);
      from = s.requests().length;
      expect(await driver(s, { systemId: '1' }).setPowerState('power off')).toBe('power off');
      expect(sent(from)).toEqual(['POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset', 'GET /redfish/v1/Systems/1']);
      expect(s.state('1').resets).toEqual(['On', 'ForceOff']);
      expect(s.maxInFlight()).toBe(1);
    });

    it('takes a BMC refusing an action already satisfied (409 to On while on) as done, after reading the state', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'On', refuseSatisfiedResets: true }] });
      expect(await driver(s).setPowerState('power on')).toBe('power on'); // found, on already: nothing sent
      const from = s.requests().length;
      expect(await driver(s).setPowerState('power on')).toBe('power on');
      const sent = s.requests().slice(from);
      expect(sent[0]).toMatchObject({ method: 'POST', status: 409 });
      expect(sent.at(-1)).toMatchObject({ method: 'GET', path: '/redfish/v1/Systems/1', status: 200 });
      expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [] });
      // Any other failure of the action is the job's error, as before.
      const wrong = await bmcError(driver(s, { password: 'not-the-password' }).setPowerState('power off'));
      expect(wrong.code).toBe('auth');
      expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: [] });
    });

    it('reboots with ForceRestart and returns only once the system is back on', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'On', powerDelayMs: 300 }] });
      const [state, ms] = await timed(driver(s, { pollIntervalMs: 50 }).setPowerState('rebooting'));
      expect(state).toBe('power on');
      // The sim reports Off at once and On after the delay: returning early would be a bug.
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: ['ForceRestart'] });
    });

    it('powers an off system on for a reboot', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off', powerDelayMs: 100 }] });
      expect(await driver(s).setPowerState('rebooting')).toBe('power on');
      expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: ['On'] });
    });

    it('soft powers off with GracefulShutdown and soft reboots with GracefulRestart', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'On', powerDelayMs: 100 }] });
      const d = driver(s);
      expect(await d.setPowerState('soft rebooting')).toBe('power on');
      expect(await d.setPowerState('soft power off')).toBe('power off');
      expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['GracefulRestart', 'GracefulShutdown'] });
    });

    it('uses ForceOn and PowerCycle where On and ForceRestart are not allowed', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off', powerDelayMs: 50, allowableResetTypes: ['ForceOn', 'ForceOff', 'PowerCycle'] }] });
      const d = driver(s);
      expect(await d.setPowerState('power on')).toBe('power on');
      expect(await d.setPowerState('rebooting')).toBe('power on');
      expect(s.state('1').resets).toEqual(['ForceOn', 'PowerCycle']);
    });

    it('reboots in two steps (off, then on) when no restart type is allowed', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'On', powerDelayMs: 100, allowableResetTypes: ['On', 'ForceOff', 'GracefulShutdown'] }] });
      const d = driver(s);
      const [, ms] = await timed(d.setPowerState('rebooting'));
      // Each step waits for its state: off after one delay, then on after another.
      expect(ms).toBeGreaterThanOrEqual(190);
      expect(await d.setPowerState('soft rebooting')).toBe('power on');
      expect(s.state('1')).toMatchObject({ PowerState: 'On', resets: ['ForceOff', 'On', 'GracefulShutdown', 'On'] });
    });

    it('reads the allowable reset types from @Redfish.ActionInfo', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off', resetActionInfo: true, allowableResetTypes: ['ForceOn', 'ForceOff'] }] });
      expect(await driver(s).setPowerState('power on')).toBe('power on');
      expect(s.state('1').resets).toEqual(['ForceOn']);
    });

    it("fails with 'unsupported' and sends nothing when no allowed reset type fits", async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'On', allowableResetTypes: ['On', 'ForceOff'] }] });
      const d = driver(s);
      const soft = await bmcError(d.setPowerState('soft power off'));
      expect(soft.code).toBe('unsupported');
      expect(soft.message).toContain('GracefulShutdown');
      expect(soft.retryable).toBe(false);
      // Soft reboot needs GracefulRestart or GracefulShutdown + On: neither is there.
      expect((await bmcError(d.setPowerState('soft rebooting'))).code).toBe('unsupported');
      expect(s.state('1').resets).toEqual([]);
    });

    it('keeps polling while the BMC reports PoweringOn', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off', powerDelayMs: 300, transitionalStates: true }] });
      await fetch(`${s.url}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset`, {
        method: 'POST',
        headers: { Authorization: basic(), 'Content-Type': 'application/json' },
        body: JSON.stringify({ ResetType: 'On' }),
      });
      expect(s.state('1').PowerState).toBe('PoweringOn');
      const [state, ms] = await timed(driver(s, { pollIntervalMs: 50 }).getPowerState());
      expect(state).toBe('power on');
      expect(ms).toBeGreaterThanOrEqual(200);
    });

    it("fails with 'timeout' when the state is not reached within powerTimeoutMs", async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off', powerDelayMs: 30_000 }] });
      const [err, ms] = await timed(bmcError(driver(s, { powerTimeoutMs: 300, pollIntervalMs: 50 }).setPowerState('power on')));
      expect(err.code).toBe('timeout');
      expect(err.retryable).toBe(true);
      expect(err.message).toContain("did not report 'power on' within 300 ms");
      expect(err.message).toContain('last PowerState: Off');
      expect(ms).toBeGreaterThanOrEqual(290);
      expect(ms).toBeLessThan(2_000);
      expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On'] });
    });
  });

  describe('boot device', () => {
    it('sets and reads back a one-time and a persistent override, both ways', async () => {
      const s = await sim();
      const d = driver(s);
      expect(await d.getBootDevice()).toEqual({ boot_device: null, persistent: null });

      await d.setBootDevice('pxe', false);
      expect(s.state('1')).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
      expect(await d.getBootDevice()).toEqual({ boot_device: 'pxe', persistent: false });

      await d.setBootDevice('disk', true);
      expect(await d.getBootDevice()).toEqual({ boot_device: 'disk', persistent: true });

      await d.setBootDevice('pxe', true);
      expect(await d.getBootDevice()).toEqual({ boot_device: 'pxe', persistent: true });

      await d.setBootDevice('disk', false);
      expect(await d.getBootDevice()).toEqual({ boot_device: 'disk', persistent: false });

      expect(s.state('1').patches).toEqual([
        { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } },
        { Boot: { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' } },
        { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' } },
        { Boot: { BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Once' } },
      ]);
    });

    it('reports no override once a one-time override has been used by a boot', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off' }] });
      const d = driver(s);
      await d.setBootDevice('pxe', false);
      await d.setPowerState('power on');
      // the stale target is still there, but Disabled: no override
      expect(s.state('1')).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Disabled' });
      expect(await d.getBootDevice()).toEqual({ boot_device: null, persistent: null });
    });

    it('keeps a persistent override across boots', async () => {
      const s = await sim({ systems: [{ id: '1', powerState: 'Off' }] });
      const d = driver(s);
      await d.setBootDevice('disk', true);
      await d.setPowerState('power on');
      await d.setPowerState('rebooting');
      expect(await d.getBootDevice()).toEqual({ boot_device: 'disk', persistent: true });
    });

    it("reports every BootSourceOverrideTarget in Ironic's names, and none for None or a target Ironic has no name for", async () => {
      const targets = ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup', 'Floppy', 'UefiShell', 'UefiTarget', 'UefiHttp', 'Usb', 'Diags'];
      const s = await sim({ systems: [{ id: '1', allowableBootTargets: targets }] });
      const d = driver(s);
      // Set as another client would: a PATCH straight to the BMC.
      const patch = async (Boot: Record<string, string>) => {
        const res = await fetch(`${s.url}/redfish/v1/Systems/1`, {
          method: 'PATCH',
          headers: { Authorization: basic(), 'Content-Type': 'application/json' },
          body: JSON.stringify({ Boot }),
        });
        expect(res.status).toBe(204);
      };
      const expected: Record<string, string | null> = {
        None: null,
        Pxe: 'pxe',
        Hdd: 'disk',
        Cd: 'cdrom',
        BiosSetup: 'bios',
        Floppy: 'floppy',
        UefiShell: null,
        UefiTarget: null,
        UefiHttp: 'uefihttp',
        Usb: null,
        Diags: null,
      };
      for (const target of targets) {
        for (const enabled of ['Once', 'Continuous']) {
          await patch({ BootSourceOverrideTarget: target, BootSourceOverrideEnabled: enabled });
          const want = target === 'None' ? { boot_device: null, persistent: null } : { boot_device: expected[target], persistent: enabled === 'Continuous' };
          expect([target, enabled, await d.getBootDevice()]).toEqual([target, enabled, want]);
        }
        // Disabled: whatever the target, the BMC boots by its own order
        await patch({ BootSourceOverrideEnabled: 'Disabled' });
        expect([target, 'Disabled', await d.getBootDevice()]).toEqual([target, 'Disabled', { boot_device: null, persistent: null }]);
      }
    });

    it('the simulator shows in the system resource what the driver PATCHed', async () => {
      const s = await sim();
      const d = driver(s);
      const boot = async () => {
        const res = await fetch(`${s.url}/redfish/v1/Systems/1`, { headers: { Authorization: basic() } });
        const { BootSourceOverrideTarget, BootSourceOverrideEnabled } = ((await res.json()) as { Boot: Record<string, unknown> }).Boot;
        return { BootSourceOverrideTarget, BootSourceOverrideEnabled };
      };
      expect(await boot()).toEqual({ BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled' });
      await d.setBootDevice('pxe', false);
      expect(await boot()).toEqual({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
      await d.setBootDevice('disk', true);
      expect(await boot()).toEqual({ BootSourceOverrideTarget: 'Hdd', BootSourceOverrideEnabled: 'Continuous' });
    });

    it("fails with 'unsupported' and does not PATCH when the target is not allowed", async () => {
      const s = await sim({ systems: [{ id: '1', allowableBootTargets: ['None', 'Hdd'] }] });
      const err = await bmcError(driver(s).setBootDevice('pxe', false));
      expect(err.code).toBe('unsupported');
      expect(err.message).toContain('Pxe');
      expect(s.state('1').patches).toEqual([]);
    });
  });

  describe('errors', () => {
    it("fails with 'auth' on a wrong password, naming the user and never the password", async () => {
      const s = await sim();
      const wrong = 'wr0ng-Secret-kiwi';
      const err = await bmcError(new RedfishDriver({ address: s.url, username: USER, password: wrong }).getPowerState());
      expect(err.code).toBe('auth');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(`Redfish BMC at ${s.url} rejected the credentials for user ${USER}`);
      for (const text of [err.message, String(err.stack), JSON.stringify(err)]) {
        expect(text).not.toContain(wrong);
        expect(text).not.toContain(PASS);
      }
    });

    it("fails with 'unreachable' when nothing listens at the address", async () => {
      const port = await closedPort();
      const err = await bmcError(new RedfishDriver({ address: `http://127.0.0.1:${port}`, username: USER, password: PASS }).getPowerState());
      expect(err.code).toBe('unreachable');
      expect(err.retryable).toBe(true);
      expect(err.message).toMatch(new RegExp(`^Redfish BMC at http://127\\.0\\.0\\.1:${port} is unreachable: .*ECONNREFUSED`));
      expect(err.message).not.toContain(PASS);
    });

    it("fails with 'timeout' when the BMC accepts the connection but never answers", async () => {
      const sockets = new Set<Socket>();
      const silent: Server = createServer((sock) => sockets.add(sock));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      onTestFinished(async () => {
        for (const sock of sockets) sock.destroy();
        await new Promise<void>((r) => silent.close(() => r()));
      });
      const { port } = silent.address() as AddressInfo;
      const [err, ms] = await timed(bmcError(new RedfishDriver({ address: `http://127.0.0.1:${port}`, username: USER, password: PASS, timeoutMs: 200 }).getPowerState()));
      expect(err.code).toBe('timeout');
      expect(err.message).toContain('did not answer GET /redfish/v1/ within 200 ms');
      expect(ms).toBeLessThan(2_000);
    });

    it("turns a 4xx from the BMC into 'protocol' carrying the BMC's own message", async () => {
      const s = await sim();
      const err = await bmcError(driver(s).deleteEventSubscription('42'));
      expect(err.code).toBe('protocol');
      expect(err.message).toBe(
        `Redfish BMC at ${s.url} answered 404 to DELETE /redfish/v1/EventService/Subscriptions/42: The resource at the URI /redfish/v1/EventService/Subscriptions/42 was not found.`,
      );
    });

    it('rejects a config without a usable address', () => {
      expect(() => new RedfishDriver({ address: 'ftp://bmc', username: USER, password: PASS })).toThrow(/http\(s\)/);
      expect(() => new RedfishDriver({ address: 'http://bmc', username: USER, password: PASS, timeoutMs: -1 })).toThrow(/timeoutMs/);
    });
  });

  describe('vendor operations', () => {
    it('ejects the inserted virtual media, and an eject of empty media is a no-op', async () => {
      const s = await sim({ virtualMediaImage: 'http://10.0.0.1/deploy.iso' });
      const d = driver(s);
      expect(s.virtualMedia()).toMatchObject({ Inserted: true, Image: 'http://10.0.0.1/deploy.iso' });
      expect(await d.ejectVirtualMedia()).toEqual(['CD1']);
      expect(s.virtualMedia()).toEqual({ Inserted: false, Image: null, ejects: 1 });
      expect(await d.ejectVirtualMedia('CD1')).toEqual([]);
      expect(s.virtualMedia().ejects).toBe(1);
      await fetch(`${s.url}/redfish/v1/Managers/BMC/VirtualMedia/CD1/Actions/VirtualMedia.InsertMedia`, {
        method: 'POST',
        headers: { Authorization: basic(), 'Content-Type': 'application/json' },
        body: JSON.stringify({ Image: 'http://10.0.0.1/other.iso' }),
      });
      // Ironic's eject_vmedia passes a device kind rather than an Id.
      expect(await d.ejectVirtualMedia('floppy')).toEqual([]);
      expect(s.virtualMedia().Inserted).toBe(true);
      expect(await d.ejectVirtualMedia('cdrom')).toEqual(['CD1']);
      expect(s.virtualMedia()).toEqual({ Inserted: false, Image: null, ejects: 2 });
      const err = await bmcError(d.ejectVirtualMedia('USB9'));
      expect(err.code).toBe('unsupported');
      expect(err.message).toContain('no virtual media device USB9 (it has: CD1)');
    });

    it('creates, lists and deletes event subscriptions', async () => {
      const s = await sim();
      const d = driver(s);
      const sub = await d.createEventSubscription({ destination: 'https://agent.example:8443/events', eventTypes: ['Alert', 'StatusChange'], context: 'node-1' });
      expect(sub).toEqual({ id: expect.any(String), destination: 'https://agent.example:8443/events', event_types: ['Alert', 'StatusChange'], context: 'node-1' });
      expect(s.subscriptions()).toEqual([{ Id: sub.id, Destination: 'https://agent.example:8443/events', EventTypes: ['Alert', 'StatusChange'], Context: 'node-1' }]);
      expect(await d.listEventSubscriptions()).toEqual([sub]);

      const bad = await bmcError(d.createEventSubscription({ destination: 'not a url' }));
      expect(bad.code).toBe('protocol');
      expect(bad.message).toContain('Destination');

      await d.deleteEventSubscription(sub.id);
      expect(s.subscriptions()).toEqual([]);
      expect(await d.listEventSubscriptions()).toEqual([]);
    });
  });

  describe('TLS', () => {
    it('refuses a self-signed certificate by default, with a clear error', async () => {
      const s = await sim({ tls });
      expect(s.url).toMatch(/^https:/);
      const err = await bmcError(driver(s).getPowerState());
      expect(err.code).toBe('protocol');
      expect(err.message).toContain(`Redfish BMC at ${s.url} presented a TLS certificate that failed verification`);
      expect(err.message).toMatch(/self[- ]signed/i);
      expect(err.message).toContain('verifyCa=false');
    });

    it('works with verifyCa=false, and with verification against the given CA', async () => {
      const s = await sim({ tls, systems: [{ id: '1', powerState: 'On' }] });
      expect(await driver(s, { verifyCa: false }).getPowerState()).toBe('power on');
      expect(await driver(s, { verifyCa: true, caCert: tls.cert }).getPowerState()).toBe('power on');
    });

    it("reports plain HTTP spoken to an HTTPS address as 'protocol'", async () => {
      const s = await sim();
      const err = await bmcError(driver({ url: s.url.replace('http:', 'https:') }).getPowerState());
      expect(err.code).toBe('protocol');
    });
  });
});

// --- Debian's redfishtool against the simulator ------------------------------------------------

describe('redfishtool (Debian package redfishtool) against the simulator', () => {
  const redfishtool = (s: RedfishSim, ...args: string[]) => {
    const url = new URL(s.url);
    const secure = url.protocol === 'https:' ? 'Always' : 'Never';
    return run('redfishtool', ['-r', url.host, '-u', USER, '-p', PASS, '-S', secure, ...args], { timeout: 20_000 });
  };

  it('reads the Systems collection and one system', async () => {
    const s = await sim({ systems: [{ id: '1', powerState: 'Off' }, { id: '2', powerState: 'On' }] });
    const coll = JSON.parse((await redfishtool(s, 'Systems')).stdout) as { Members: unknown[] };
    expect(coll.Members).toEqual([{ '@odata.id': '/redfish/v1/Systems/1' }, { '@odata.id': '/redfish/v1/Systems/2' }]);
    const sys = JSON.parse((await redfishtool(s, 'Systems', '-I', '2')).stdout) as Record<string, unknown>;
    expect(sys).toMatchObject({ Id: '2', PowerState: 'On' });
  });

  it('resets a system and sets a boot override', async () => {
    const s = await sim({ systems: [{ id: '1', powerState: 'Off' }] });
    await redfishtool(s, 'Systems', '-I', '1', 'reset', 'ForceOn');
    const out = JSON.parse((await redfishtool(s, 'Systems', '-I', '1', 'setBootOverride', 'Once', 'Pxe')).stdout) as { Boot: unknown };
    expect(out.Boot).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
    expect(s.state('1')).toMatchObject({ resets: ['ForceOn'], BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
  });

  it('logs in with a session, uses it, and logs out', async () => {
    const s = await sim({ systems: [{ id: '1' }, { id: '2' }] });
    const list = JSON.parse((await redfishtool(s, '-A', 'Session', 'Systems', 'list')).stdout) as { Members: { Id: string }[] };
    expect(list.Members.map((m) => m.Id)).toEqual(['1', '2']);
    const sessions = await fetch(`${s.url}/redfish/v1/SessionService/Sessions`, { headers: { Authorization: basic() } });
    expect(await sessions.json()).toMatchObject({ 'Members@odata.count': 0 });
  });

  it('works over HTTPS and fails on a wrong password', async () => {
    const s = await sim({ tls, systems: [{ id: '1', powerState: 'On' }] });
    expect(JSON.parse((await redfishtool(s, 'Systems', '-I', '1')).stdout)).toMatchObject({ Id: '1', PowerState: 'On' });
    const url = new URL(s.url);
    await expect(run('redfishtool', ['-r', url.host, '-u', USER, '-p', 'nope', '-S', 'Always', 'Systems'])).rejects.toMatchObject({ stderr: expect.stringContaining('401') });
  });
});
