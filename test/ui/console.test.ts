import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSP } from '../../functions/api/console.ts';
import { apiUrl, call, unique } from '../support/api.ts';
import { siteDesign } from '../support/drydock-site.ts';
import { waitFor } from '../support/wait.ts';

/**
 * The web console in a real browser: Debian's headless Chromium (`chromium`, from
 * scripts/system-packages.sh) driven by playwright-core, which downloads no browser. Against the
 * shared local stack, as a person would: a user made through Keystone's `POST /v3/users` signs in
 * with name, password and project, books two hosts by ticking them and dragging across the
 * calendar, sees the lease's bars, opens one with the keyboard and extends the lease, opens a
 * node, looks at tasks and sites, deletes the lease and signs out. Screenshots of each step stay
 * in test-results/console/ (gitignored) for people to look at.
 */
const SHOTS = join(import.meta.dirname, '../../test-results/console');
const CHROMIUM = '/usr/bin/chromium';

let browser: Browser;
let page: Page;
/** Whatever the page logged as an error or threw (a CSP violation is logged as a console error). */
const pageErrors: string[] = [];

const tag = unique('ui');
const project = unique('ui-proj');
const user = unique('ui-user');
const member = unique('ui-member');
const password = `pw-${unique('x')}`;
const hosts = [`${tag}-a`, `${tag}-b`, `${tag}-c`];
const site = `${tag}-site`;
let taskId = '';

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  for (const name of hosts) {
    const res = await call('POST', '/v1/os-hosts', { body: { name, vcpus: 16, memory_mb: 65536, local_gb: 480 } });
    expect(res.status, res.text).toBe(201);
  }
  const res = await call('POST', '/v3/users', { body: { user: { name: user, password, default_project_id: project, roles: ['admin'] } } });
  expect(res.status, res.text).toBe(201);
  const res2 = await call('POST', '/v3/users', { body: { user: { name: member, password, default_project_id: project, roles: ['member'] } } });
  expect(res2.status, res2.text).toBe(201);
  // A site whose agent has been in touch (a claim with nothing to claim), for the sites view.
  const agent = await call('POST', '/v1.1/admin/tokens', { body: { project_id: site, role: 'agent' } });
  expect(agent.status, agent.text).toBe(202);
  const claim = await call('POST', '/api/v1.0/agent/jobs/claim', { token: agent.body.token.token, body: { wait: 0 }, headers: { 'User-Agent': 'slipway-agent/0.1.0' } });
  expect(claim.status, claim.text).toBe(200);
  // A Drydock task with a step per node, for the tasks view: its BMCs are reached by another
  // site's agent, which never comes, so its node steps stay queued (0 of 2 done).
  const design = await call('POST', '/api/v1.0/designs', { body: {} });
  expect(design.status, design.text).toBe(201);
  const yaml = siteDesign({ site: `${tag}-dd`, redfishPort: 9, nodes: [`${tag}-n1`, `${tag}-n2`], root: `/tmp/${tag}` });
  const part = await call('POST', `/api/v1.0/designs/${design.body.design_id}/parts?ingester=yaml`, { rawBody: yaml, headers: { 'Content-Type': 'application/x-yaml' } });
  expect(part.status, part.text).toBe(201);
  const task = await call('POST', '/api/v1.0/tasks', { body: { action: 'verify_nodes', design_ref: design.body.design_ref, node_filter: null } });
  expect(task.status, task.text).toBe(201);
  taskId = task.body.task_id;
  await waitFor(`task ${taskId} to have its node steps`, async () => ((await call('GET', `/api/v1.0/tasks/${taskId}`)).body.subtask_id_list.length === 2 ? true : undefined));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, timezoneId: 'UTC', locale: 'en-GB' });
  page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => {
    // The browser logs the failed sign-in's 401, the refused booking's 409 and the member's 403s
    // (os-hosts), all provoked below.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of (401|403|409) /.test(m.text())) pageErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

describe('web console in headless Chromium', () => {
  let leaseId = '';
  let leaseName = '';

  it('serves /console with its CSP and shows the sign-in form; a wrong password is said plainly', async () => {
    const res = await page.goto(`${apiUrl()}/console`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toBe(CSP);
    await page.getByRole('heading', { name: 'Sign in to Slipway' }).waitFor();
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByLabel('Project').fill(project);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('Wrong user name, password or project');
    await shot('01-sign-in-error');
  });

  it('signs in with user name, password and project (Keystone password method), keeping the token in sessionStorage', async () => {
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').waitFor();
    expect(await page.getByTestId('who').textContent()).toContain(`${user} · ${project}`);
    const stored = await page.evaluate(() => sessionStorage.getItem('slipway.console.session'));
    expect(JSON.parse(stored!)).toMatchObject({ user, project, roles: ['admin'] });
    // Nothing at all in localStorage (it would outlive the tab).
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await page.getByRole('heading', { name: 'Lease calendar' }).waitFor();
  });

  it('creates a lease on exactly the ticked hosts by dragging across the calendar', async () => {
    await page.getByLabel('Filter hosts by name').fill(tag);
    for (const h of hosts) await page.locator(`.cal-row[data-host="${h}"]`).waitFor();
    await shot('02-calendar-empty');
    // Tick host a; drag on host b's row: the lease is for both (and not c).
    await page.locator(`.cal-row[data-host="${hosts[0]}"] input[type=checkbox]`).check();
    const track = page.getByTestId(`track-${hosts[1]}`);
    const box = (await track.boundingBox())!;
    // The week view starts a day ago: 30 % to 45 % of it is about 1.1 to 2.2 days from now.
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width * 0.3, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.45, y, { steps: 8 });
    await page.mouse.up();
    const dialog = page.getByRole('dialog', { name: 'New lease' });
    await dialog.waitFor();
    expect(await dialog.getByRole('checkbox', { name: hosts[0] }).isChecked()).toBe(true);
    expect(await dialog.getByRole('checkbox', { name: hosts[1] }).isChecked()).toBe(true);
    expect(await dialog.getByRole('checkbox', { name: hosts[2] }).isChecked()).toBe(false);
    leaseName = unique('ui-lease');
    await dialog.getByLabel('Name').fill(leaseName);
    await shot('03-new-lease');
    await dialog.getByRole('button', { name: 'Create lease' }).click();
    await dialog.waitFor({ state: 'hidden' });

    const found = await call('GET', `/v1/leases?name=${encodeURIComponent(leaseName)}`);
    expect(found.status, found.text).toBe(200);
    expect(found.body.leases).toHaveLength(1);
    const lease = found.body.leases[0];
    leaseId = lease.id;
    expect(lease.project_id).toBe(project);
    const start = Date.parse(`${lease.start_date.slice(0, 19)}Z`);
    const end = Date.parse(`${lease.end_date.slice(0, 19)}Z`);
    expect(start).toBeGreaterThan(Date.now() + 12 * 3_600_000);
    expect(end - start).toBeGreaterThan(12 * 3_600_000);
    // Exactly the two hosts picked, by name.
    const allocs = await call('GET', `/v1/os-hosts/allocations?lease_id=${leaseId}`);
    const hostList = await call('GET', '/v1/os-hosts');
    const names = new Map<string, string>(hostList.body.hosts.map((h: any) => [h.id, h.hypervisor_hostname]));
    const holding = allocs.body.allocations.filter((a: any) => a.reservations.some((r: any) => r.lease_id === leaseId));
    expect(holding.map((a: any) => names.get(a.resource_id)).sort()).toEqual([hosts[0], hosts[1]]);
  });

  it("shows the lease's bars on both hosts, opened after creation; Esc closes the dialog", async () => {
    const details = page.getByRole('dialog', { name: `Lease ${leaseName}` });
    await details.waitFor();
    expect(await details.textContent()).toContain(`${hosts[0]}, ${hosts[1]}`);
    await page.keyboard.press('Escape');
    await details.waitFor({ state: 'hidden' });
    for (const h of [hosts[0], hosts[1]]) await page.locator(`.cal-row[data-host="${h}"] .bar[data-lease="${leaseId}"]`).waitFor();
    expect(await page.locator(`.cal-row[data-host="${hosts[2]}"] .bar`).count()).toBe(0);
    const label = await page.locator(`.cal-row[data-host="${hosts[0]}"] .bar[data-lease="${leaseId}"]`).getAttribute('aria-label');
    expect(label).toContain(`${leaseName}: project ${project}, PENDING`);
    await page.locator('.now').waitFor();
    await shot('04-calendar-with-lease');
  });

  it("shows the API's error plainly when a booking cannot be made (the hosts are taken then)", async () => {
    const track = page.getByTestId(`track-${hosts[0]}`);
    const box = (await track.boundingBox())!;
    // From before the lease's bar (a press on the bar would open the lease) to across it.
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width * 0.2, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, y, { steps: 8 });
    await page.mouse.up();
    const dialog = page.getByRole('dialog', { name: 'New lease' });
    await dialog.waitFor();
    await dialog.getByLabel('Name').fill(unique('ui-clash'));
    await dialog.getByRole('button', { name: 'Create lease' }).click();
    const alert = dialog.getByRole('alert');
    await alert.waitFor();
    // The surface's own message, with the request and status it came from.
    expect(await alert.textContent()).toMatch(/^POST \/v1\/leases: 4\d\d — \S/);
    await shot('05-booking-error');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
  });

  it('opens the lease from its bar with the keyboard (focus, Enter) and extends it by a day', async () => {
    const before = (await call('GET', `/v1/leases/${leaseId}`)).body.lease.end_date as string;
    await page.locator(`.cal-row[data-host="${hosts[1]}"] .bar[data-lease="${leaseId}"]`).focus();
    await page.keyboard.press('Enter');
    const details = page.getByRole('dialog', { name: `Lease ${leaseName}` });
    await details.waitFor();
    await details.getByRole('button', { name: 'end +1 day' }).click();
    await details.getByRole('button', { name: 'Extend' }).click();
    const want = Date.parse(`${before.slice(0, 19)}Z`) + 86_400_000;
    // The dialog shows the new end once the PUT succeeded and the calendar polled it back.
    await details.getByTestId('lease-end').filter({ hasText: `${new Date(want).toISOString().slice(0, 16).replace('T', ' ')} UTC` }).waitFor();
    const after = (await call('GET', `/v1/leases/${leaseId}`)).body.lease.end_date as string;
    expect(Date.parse(`${after.slice(0, 19)}Z`)).toBe(want);
    await shot('06-lease-extended');
    await page.keyboard.press('Escape');
    await details.waitFor({ state: 'hidden' });
  });

  it('polls every 10 s while the tab is visible, not while it is hidden, and catches up when shown', async () => {
    const polls: number[] = [];
    const onRequest = (r: { url(): string; method(): string }) => {
      if (r.method() === 'GET' && new URL(r.url()).pathname === '/v1/leases') polls.push(Date.now());
    };
    page.on('request', onRequest);
    try {
      await waitFor('a poll of the leases', async () => polls.length > 0 || undefined, 12_000);
      // Hidden (as a background tab is): the page's visibility, as the browser would report it.
      await page.evaluate(`Object.defineProperty(document, 'hidden', { value: true, configurable: true }); document.dispatchEvent(new Event('visibilitychange'))`);
      const hiddenAt = polls.length;
      await new Promise((r) => setTimeout(r, 11_000));
      expect(polls.length).toBe(hiddenAt);
      await page.evaluate(`Object.defineProperty(document, 'hidden', { value: false, configurable: true }); document.dispatchEvent(new Event('visibilitychange'))`);
      await waitFor('a poll as soon as the tab is shown', async () => polls.length > hiddenAt || undefined, 2_000);
    } finally {
      page.off('request', onRequest);
    }
  }, 40_000);

  it("lists nodes with power and provision state, lessee and maintenance, and opens a node's detail", async () => {
    await page.getByRole('link', { name: 'Nodes' }).click();
    await page.getByRole('heading', { name: 'Nodes' }).waitFor();
    await page.getByLabel('Filter nodes by name').fill(tag);
    for (const col of ['Power', 'Provision state', 'Maintenance', 'Lessee']) await page.getByRole('columnheader', { name: col }).waitFor();
    await page.getByRole('link', { name: hosts[0] }).click();
    await page.getByRole('heading', { name: `Node ${hosts[0]}` }).waitFor();
    await page.locator('[data-field="provision_state"]').waitFor();
    expect(await page.locator('[data-field="name"]').textContent()).toBe(hosts[0]);
    await shot('07-node-detail');
  });

  it('shows Drydock tasks and sites with their agents (or says why not)', async () => {
    await page.getByRole('link', { name: 'Tasks' }).click();
    await page.getByRole('heading', { name: 'Drydock tasks' }).waitFor();
    await page.locator(`a[href="#/tasks/${taskId}"]`).waitFor();
    await shot('08-tasks');
    // Per-node progress: the task's two node steps, none finished yet.
    await page.locator(`a[href="#/tasks/${taskId}"]`).click();
    await page.getByRole('heading', { name: 'Task verify_nodes' }).waitFor();
    await page.getByRole('progressbar', { name: /of 2 nodes finished/ }).waitFor();
    await page.getByRole('heading', { name: 'Per node' }).waitFor();
    const rows = page.locator('tbody tr');
    expect(await rows.count()).toBe(2);
    // Each row names its node (the subtask's node_filter) and its step.
    expect((await rows.allTextContents()).map((t) => t.slice(0, `${tag}-n1`.length)).sort()).toEqual([`${tag}-n1`, `${tag}-n2`]);
    await shot('09-task-detail');
    await page.getByRole('link', { name: 'Sites' }).click();
    await page.getByRole('heading', { name: 'Sites and agents' }).waitFor();
    const card = page.getByRole('article', { name: new RegExp(`^${site}`) });
    await card.waitFor();
    expect(await card.textContent()).toContain('connected');
    expect(await card.textContent()).toMatch(/Last contact: \d+ s ago/);
    expect(await card.textContent()).toContain('0.1.0');
    await shot('10-sites');
  });

  it('deletes the lease from its dialog', async () => {
    await page.getByRole('link', { name: 'Calendar' }).click();
    await page.getByLabel('Filter hosts by name').fill(tag);
    await page.locator(`.bar[data-lease="${leaseId}"]`).first().click();
    const details = page.getByRole('dialog', { name: `Lease ${leaseName}` });
    await details.getByRole('button', { name: 'Delete lease…' }).click();
    await details.getByRole('button', { name: 'Yes, delete' }).click();
    await details.waitFor({ state: 'hidden' });
    await page.locator(`.bar[data-lease="${leaseId}"]`).first().waitFor({ state: 'detached' });
    expect((await call('GET', `/v1/leases/${leaseId}`)).status).toBe(404);
    await shot('11-lease-deleted');
  });

  it('signs out: the token is revoked and gone from sessionStorage', async () => {
    const token = JSON.parse((await page.evaluate(() => sessionStorage.getItem('slipway.console.session')))!).token as string;
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Slipway' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('slipway.console.session'))).toBeNull();
    let status = 0;
    for (let i = 0; i < 20 && status !== 401; i++) {
      status = (await call('GET', '/v1/leases', { token })).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(401);
  });

  it("signed in as a member, lists its project's leases and says why the calendar has no hosts", async () => {
    await page.getByLabel('User name').fill(member);
    await page.getByLabel('Password').fill(password);
    await page.getByLabel('Project').fill(project);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').filter({ hasText: `${member} · ${project} (member)` }).waitFor();
    // Blazar's os-hosts is for administrators: the console says so instead of an empty calendar.
    await page.getByRole('status').filter({ hasText: 'This token cannot list hosts' }).waitFor();
    // A lease the member books (by a host property, as members do) is a row of its own.
    const mine = await call('POST', '/v1/leases', {
      token: JSON.parse((await page.evaluate(() => sessionStorage.getItem('slipway.console.session')))!).token,
      body: { name: unique('ui-member-lease'), start_date: new Date(Date.now() + 3 * 3_600_000).toISOString().slice(0, 16).replace('T', ' '), end_date: new Date(Date.now() + 9 * 3_600_000).toISOString().slice(0, 16).replace('T', ' '), reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: JSON.stringify(['==', '$hypervisor_hostname', hosts[2]]) }] },
    });
    expect(mine.status, mine.text).toBe(201);
    await page.locator(`.bar[data-lease="${mine.body.lease.id}"]`).waitFor({ timeout: 15_000 });
    await page.getByText(/^Leases \(\d+\)$/).waitFor();
    await shot('12-member-view');
    expect((await call('DELETE', `/v1/leases/${mine.body.lease.id}`)).status).toBe(204);
  });

  it('logged no error and broke no Content-Security-Policy rule on the way', () => {
    expect(pageErrors).toEqual([]);
  });
});
