import { describe, expect, it } from 'vitest';
import { apiUrl, call, tokenFor, unique } from '../support/api.ts';

/**
 * Keystone v3 sign-in over HTTP (issue 15): every route of the identity surface, its error body,
 * hostile input, revocation, rescope, and the uniqueness of user names under concurrency. The
 * real OpenStack clients drive the same surface in test/contract/keystone.test.ts.
 */
const KEYSTONE_401 = { error: { code: 401, title: 'Unauthorized', message: 'The request you have made requires authentication.' } };

async function newUser(opts: { project?: string; roles?: string[]; password?: string } = {}) {
  const name = unique('ks-user');
  const project = opts.project ?? unique('ks-proj');
  const password = opts.password ?? `pw-${unique('x')}`;
  const res = await call('POST', '/v3/users', { body: { user: { name, password, default_project_id: project, roles: opts.roles ?? ['member'] } } });
  expect(res.status, res.text).toBe(201);
  return { id: res.body.user.id as string, name, project, password };
}

function passwordAuth(user: { id?: string; name?: string; domain?: unknown }, password: string, scope?: unknown) {
  return { auth: { identity: { methods: ['password'], password: { user: { ...user, password } } }, ...(scope === undefined ? {} : { scope }) } };
}

async function signIn(body: unknown) {
  return call('POST', '/v3/auth/tokens', { token: null, body });
}

function expectKeystoneError(res: { status: number; body: any; text: string }, status: number) {
  expect(res.status, res.text).toBe(status);
  expect(Object.keys(res.body ?? {})).toEqual(['error']);
  expect(res.body.error).toEqual({ code: status, title: expect.any(String), message: expect.any(String) });
}

describe('GET /v3', () => {
  it('answers version discovery without a token, with a self link back to where the client reached us', async () => {
    const res = await call('GET', '/v3', { token: null });
    expect(res.status).toBe(200);
    expect(res.body.version).toMatchObject({ id: 'v3.14', status: 'stable', links: [{ rel: 'self', href: `${apiUrl()}/v3/` }] });
    expect(res.body.version['media-types'][0].type).toBe('application/vnd.openstack.identity-v3+json');
  });
});

describe('POST /v3/auth/tokens: password', () => {
  it('signs in by user name and project name in domain Default (the console contract), 201 with X-Subject-Token and the catalog', async () => {
    const u = await newUser();
    const res = await signIn(passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password, { project: { name: u.project, domain: { id: 'default' } } }));
    expect(res.status, res.text).toBe(201);
    const secret = res.headers.get('x-subject-token')!;
    expect(secret).toMatch(/^slp_/);
    const t = res.body.token;
    expect(t.methods).toEqual(['password']);
    expect(t.user).toMatchObject({ id: u.id, name: u.name, domain: { id: 'default', name: 'Default' } });
    expect(t.project).toMatchObject({ id: u.project, name: u.project, domain: { id: 'default', name: 'Default' } });
    expect(t.roles).toEqual([{ id: 'member', name: 'member' }]);
    const ttl = Date.parse(t.expires_at) - Date.parse(t.issued_at);
    expect(ttl).toBeGreaterThan(3590_000);
    expect(ttl).toBeLessThanOrEqual(3600_000);
    const urls = Object.fromEntries(t.catalog.map((s: any) => [s.type, s.endpoints.find((e: any) => e.interface === 'public').url]));
    expect(urls).toEqual({
      identity: `${apiUrl()}/v3`,
      reservation: `${apiUrl()}/v1`,
      baremetal: `${apiUrl()}/`,
      physicalprovisioner: `${apiUrl()}/api/v1.0`,
      slipway: `${apiUrl()}/v1.1/${u.project}`,
      commissaire: `${apiUrl()}/`,
    });
    // A Keystone token is a Slipway token: every surface takes it.
    expect((await call('GET', '/v1/leases', { token: secret })).status).toBe(200);
    expect((await call('GET', `/v1.1/${u.project}/leases`, { token: secret })).status).toBe(200);
    expect((await call('GET', '/v1/nodes', { token: secret })).status).toBe(200);
  });

  it('signs in by user id, by Default domain name, and without a scope (the user\'s project), and honours ?nocatalog', async () => {
    const u = await newUser();
    const byId = await signIn(passwordAuth({ id: u.id }, u.password, { project: { id: u.project } }));
    expect(byId.status, byId.text).toBe(201);
    const byDomainName = await call('POST', '/v3/auth/tokens?nocatalog', { token: null, body: passwordAuth({ name: u.name, domain: { name: 'Default' } }, u.password) });
    expect(byDomainName.status, byDomainName.text).toBe(201);
    expect(byDomainName.body.token.project.id).toBe(u.project);
    expect(byDomainName.body.token.catalog).toBeUndefined();
  });

  it('gives the same 401 for a wrong password, an unknown user, another project and another domain, in about the same time', async () => {
    const u = await newUser();
    const cases = [
      passwordAuth({ name: u.name, domain: { id: 'default' } }, 'wrong-password'),
      passwordAuth({ name: unique('nobody'), domain: { id: 'default' } }, u.password),
      passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password, { project: { name: 'not-mine', domain: { id: 'default' } } }),
      passwordAuth({ name: u.name, domain: { id: 'elsewhere' } }, u.password),
      passwordAuth({ id: 'f'.repeat(32) }, u.password),
    ];
    for (const body of cases) {
      const res = await signIn(body);
      expect(res.status, res.text).toBe(401);
      expect(res.body).toEqual(KEYSTONE_401);
      expect(res.headers.get('x-subject-token')).toBeNull();
    }
    // Timing: an unknown user is hashed against a dummy of the same cost as a wrong password.
    const time = async (body: unknown) => {
      const t0 = performance.now();
      await signIn(body);
      return performance.now() - t0;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const wrong: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      wrong.push(await time(cases[0]));
      unknown.push(await time(cases[1]));
    }
    const [w, n] = [median(wrong), median(unknown)];
    expect(Math.min(w, n) / Math.max(w, n), `wrong password ${w.toFixed(1)} ms, unknown user ${n.toFixed(1)} ms`).toBeGreaterThan(0.6);
  });

  it('refuses multi-method, domain and system scopes, and unsupported methods with 401', async () => {
    const u = await newUser();
    const base = passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password);
    for (const body of [
      { auth: { ...base.auth, identity: { ...base.auth.identity, methods: ['password', 'token'] } } },
      { auth: { ...base.auth, scope: { domain: { id: 'default' } } } },
      { auth: { ...base.auth, scope: { system: { all: true } } } },
      { auth: { identity: { methods: ['totp'], totp: {} } } },
      { auth: { identity: { methods: ['password'] } } },
    ]) {
      const res = await signIn(body);
      expect(res.status, JSON.stringify(body)).toBe(401);
      expect(res.body).toEqual(KEYSTONE_401);
    }
  });
});

describe('hostile input on /v3', () => {
  it('answers malformed and oversized requests with 4xx in Keystone format', async () => {
    const long = 'x'.repeat(4097);
    const u = await newUser();
    const cases: [unknown, number][] = [
      [{}, 400],
      [{ auth: {} }, 400],
      [{ auth: { identity: { methods: 'password' } } }, 400],
      [{ auth: { identity: { methods: [] } } }, 400],
      [passwordAuth({ name: u.name }, long), 400],
      [passwordAuth({ name: 'n'.repeat(256) }, 'pw'), 400],
      [passwordAuth({ name: 'bad\u0000name' }, 'pw'), 400],
      [passwordAuth({ name: u.name }, ''), 400],
      [{ auth: { identity: { methods: ['token'], token: { id: 't'.repeat(600) } } } }, 400],
      [{ auth: { identity: { methods: ['password'], password: { user: { name: 42, password: 'pw' } } } } }, 400],
    ];
    for (const [body, status] of cases) expectKeystoneError(await signIn(body), status);
    expectKeystoneError(await call('POST', '/v3/auth/tokens', { token: null, rawBody: '{"auth":', headers: { 'Content-Type': 'application/json' } }), 400);
    expectKeystoneError(await call('POST', '/v3/auth/tokens', { token: null, rawBody: 'auth=1', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }), 400);
    expectKeystoneError(await call('POST', '/v3/auth/tokens', { token: null, rawBody: `{"a":"${'x'.repeat(1024 * 1024 + 10)}"}`, headers: { 'Content-Type': 'application/json' } }), 413);
    expectKeystoneError(await call('GET', '/v3/nope', { token: null }), 401);
    expectKeystoneError(await call('GET', '/v3/nope'), 404);
    expectKeystoneError(await call('PUT', '/v3/auth/tokens'), 405);
    expectKeystoneError(await call('GET', '/v3/users', { token: null }), 401);
  });

  it('bounds user names and passwords on create, and refuses unknown roles and other domains', async () => {
    const ok = { name: unique('h'), password: 'pw', default_project_id: 'p' };
    for (const user of [
      { ...ok, name: '' },
      { ...ok, name: 'a'.repeat(256) },
      { ...ok, name: 'a:b' },
      { ...ok, name: ' padded' },
      { ...ok, password: 'x'.repeat(4097) },
      { ...ok, password: '' },
      { ...ok, default_project_id: 'bad project' },
      { ...ok, roles: ['root'] },
      { ...ok, domain_id: 'other' },
      { ...ok, enabled: false },
      { name: ok.name, password: 'pw' },
    ]) {
      expectKeystoneError(await call('POST', '/v3/users', { body: { user } }), 400);
    }
  });
});

describe('GET, HEAD and DELETE /v3/auth/tokens', () => {
  it('validates one\'s own token, hides others\' from non-admins, and revokes: the token then fails everywhere', async () => {
    const u = await newUser();
    const a = (await signIn(passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password))).headers.get('x-subject-token')!;
    const b = (await signIn(passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password))).headers.get('x-subject-token')!;

    const got = await call('GET', '/v3/auth/tokens', { token: a, headers: { 'X-Subject-Token': b } });
    expect(got.status, got.text).toBe(200);
    expect(got.headers.get('x-subject-token')).toBe(b);
    expect(got.body.token).toMatchObject({ user: { id: u.id, name: u.name }, methods: ['password'] });
    expect(got.body.token.catalog.length).toBeGreaterThan(0);

    const head = await fetch(`${apiUrl()}/v3/auth/tokens`, { method: 'HEAD', headers: { 'X-Auth-Token': a, 'X-Subject-Token': b } });
    expect(head.status).toBe(200);
    const headBad = await fetch(`${apiUrl()}/v3/auth/tokens`, { method: 'HEAD', headers: { 'X-Auth-Token': a, 'X-Subject-Token': 'slp_nope-nope-nope' } });
    expect(headBad.status).toBe(404);

    // Another user's token is not found for a non-admin; an admin sees it.
    const other = await newUser();
    const c = (await signIn(passwordAuth({ name: other.name, domain: { id: 'default' } }, other.password))).headers.get('x-subject-token')!;
    expectKeystoneError(await call('GET', '/v3/auth/tokens', { token: a, headers: { 'X-Subject-Token': c } }), 404);
    expect((await call('GET', '/v3/auth/tokens', { headers: { 'X-Subject-Token': c } })).status).toBe(200);
    expectKeystoneError(await call('GET', '/v3/auth/tokens', { token: a }), 400);

    expect((await call('DELETE', '/v3/auth/tokens', { token: a, headers: { 'X-Subject-Token': b } })).status).toBe(204);
    expectKeystoneError(await call('GET', '/v3/auth/tokens', { token: a, headers: { 'X-Subject-Token': b } }), 404);
    expect((await call('GET', '/v1/leases', { token: b })).status).toBe(401);
    // Revoking oneself.
    expect((await call('DELETE', '/v3/auth/tokens', { token: a, headers: { 'X-Subject-Token': a } })).status).toBe(204);
    expectKeystoneError(await call('GET', '/v3/users', { token: a }), 401);
  });
});

describe('POST /v3/auth/tokens: token (rescope)', () => {
  it('turns a token into a new one of the same project, never outliving it; refuses another project', async () => {
    const u = await newUser({ roles: ['reader'] });
    const first = await signIn(passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password));
    const t1 = first.headers.get('x-subject-token')!;
    const re = await signIn({ auth: { identity: { methods: ['token'], token: { id: t1 } }, scope: { project: { name: u.project, domain: { id: 'default' } } } } });
    expect(re.status, re.text).toBe(201);
    const t2 = re.headers.get('x-subject-token')!;
    expect(t2).not.toBe(t1);
    expect(re.body.token.methods.sort()).toEqual(['password', 'token']);
    expect(re.body.token.user.name).toBe(u.name);
    expect(Date.parse(re.body.token.expires_at)).toBeLessThanOrEqual(Date.parse(first.body.token.expires_at));
    expect((await call('GET', `/v1.1/${u.project}/leases`, { token: t2 })).status).toBe(200);

    const other = await signIn({ auth: { identity: { methods: ['token'], token: { id: t1 } }, scope: { project: { id: 'someone-else' } } } });
    expect(other.body).toEqual(KEYSTONE_401);
    const bogus = await signIn({ auth: { identity: { methods: ['token'], token: { id: 'slp_no-such-token-anywhere' } } } });
    expect(bogus.body).toEqual(KEYSTONE_401);
  });

  it('rescopes a static Slipway token into an expiring one, and refuses agent tokens', async () => {
    const member = await tokenFor('member');
    const re = await signIn({ auth: { identity: { methods: ['token'], token: { id: member.token } } } });
    expect(re.status, re.text).toBe(201);
    expect(re.body.token.project.id).toBe(member.project);
    expect(re.body.token.expires_at).not.toBeNull();
    const agent = await tokenFor('agent');
    expect((await signIn({ auth: { identity: { methods: ['token'], token: { id: agent.token } } } })).status).toBe(401);
  });
});

async function tokenOf(u: { name: string; password: string }): Promise<string> {
  const res = await signIn(passwordAuth({ name: u.name, domain: { id: 'default' } }, u.password));
  expect(res.status, res.text).toBe(201);
  return res.headers.get('x-subject-token')!;
}

describe('/v3/users', () => {
  it('creates, lists (and by ?name=), gets and deletes users in Keystone shapes; admins only, a user may read itself', async () => {
    const u = await newUser({ roles: ['member', 'reader'] });
    const list = await call('GET', '/v3/users');
    expect(list.status).toBe(200);
    const mine = list.body.users.find((x: any) => x.id === u.id);
    expect(mine).toMatchObject({ name: u.name, domain_id: 'default', default_project_id: u.project, enabled: true, roles: ['member', 'reader'] });
    expect(list.text).not.toMatch(/password_hash|scrypt/);
    const byName = await call('GET', `/v3/users?name=${encodeURIComponent(u.name)}`);
    expect(byName.body.users.map((x: any) => x.id)).toEqual([u.id]);
    expect((await call('GET', '/v3/users?name=nobody-by-that-name')).body.users).toEqual([]);
    expect((await call('GET', `/v3/users/${u.id}`)).body.user).toMatchObject({ id: u.id, name: u.name, links: { self: `${apiUrl()}/v3/users/${u.id}` } });

    const t = await tokenOf(u);
    expect((await call('GET', `/v3/users/${u.id}`, { token: t })).status).toBe(200);
    expectKeystoneError(await call('GET', '/v3/users', { token: t }), 403);
    expectKeystoneError(await call('POST', '/v3/users', { token: t, body: { user: { name: unique('x'), password: 'pw', default_project_id: 'p' } } }), 403);
    const other = await newUser();
    expectKeystoneError(await call('GET', `/v3/users/${other.id}`, { token: t }), 404);
    expectKeystoneError(await call('DELETE', `/v3/users/${other.id}`, { token: t }), 403);

    expect((await call('DELETE', `/v3/users/${other.id}`)).status).toBe(204);
    expectKeystoneError(await call('DELETE', `/v3/users/${other.id}`), 404);
    expectKeystoneError(await call('GET', `/v3/users/${other.id}`), 404);
    expect((await signIn(passwordAuth({ name: other.name, domain: { id: 'default' } }, other.password))).body).toEqual(KEYSTONE_401);
  });

  it('keeps user names unique under concurrent creates (one 201, the rest 409), and the name is free again after a delete', async () => {
    const name = unique('race');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => call('POST', '/v3/users', { body: { user: { name, password: `pw-${i}`, default_project_id: `p${i}` } } })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    for (const r of results.filter((x) => x.status === 409)) expectKeystoneError(r, 409);
    const winner = results.find((r) => r.status === 201)!.body.user;
    expect((await call('GET', `/v3/users?name=${name}`)).body.users.map((u: any) => u.id)).toEqual([winner.id]);
    // Only the winner's password signs in.
    const i = Number(winner.default_project_id.slice(1));
    expect((await signIn(passwordAuth({ name, domain: { id: 'default' } }, `pw-${i}`))).status).toBe(201);
    expect((await signIn(passwordAuth({ name, domain: { id: 'default' } }, `pw-${(i + 1) % 8}`))).status).toBe(401);
    expect((await call('DELETE', `/v3/users/${winner.id}`)).status).toBe(204);
    expect((await call('POST', '/v3/users', { body: { user: { name, password: 'again', default_project_id: 'p' } } })).status).toBe(201);
  });

  it('deleting a user revokes its tokens and application credentials at once', async () => {
    const u = await newUser();
    const t1 = await tokenOf(u);
    const t2 = await tokenOf(u);
    const cred = await call('POST', `/v3/users/${u.id}/application_credentials`, { token: t1, body: { application_credential: { name: 'ci' } } });
    expect(cred.status, cred.text).toBe(201);
    const credAuth = { auth: { identity: { methods: ['application_credential'], application_credential: { id: cred.body.application_credential.id, secret: cred.body.application_credential.secret } } } };
    const t3 = (await signIn(credAuth)).headers.get('x-subject-token')!;
    for (const t of [t1, t2, t3]) expect((await call('GET', '/v1/leases', { token: t })).status).toBe(200);

    expect((await call('DELETE', `/v3/users/${u.id}`)).status).toBe(204);
    for (const t of [t1, t2, t3]) expect((await call('GET', '/v1/leases', { token: t })).status).toBe(401);
    expect((await signIn(credAuth)).body).toEqual(KEYSTONE_401);
  });
});

describe('/v3/users/{user_id}/application_credentials', () => {
  it('creates (secret shown once), lists, gets and deletes; signs in by id and by name + user; deletion revokes its tokens', async () => {
    const u = await newUser({ roles: ['member', 'reader'] });
    const t = await tokenOf(u);
    const path = `/v3/users/${u.id}/application_credentials`;
    const made = await call('POST', path, { token: t, body: { application_credential: { name: 'deploy', description: 'CI', roles: [{ name: 'reader' }] } } });
    expect(made.status, made.text).toBe(201);
    const c = made.body.application_credential;
    expect(c).toMatchObject({ name: 'deploy', description: 'CI', user_id: u.id, project_id: u.project, roles: [{ id: 'reader', name: 'reader' }], unrestricted: false, expires_at: null });
    expect(c.secret.length).toBeGreaterThanOrEqual(32);

    const listed = await call('GET', path, { token: t });
    expect(listed.body.application_credentials.map((x: any) => x.id)).toEqual([c.id]);
    expect(listed.text).not.toContain(c.secret);
    expect((await call('GET', `${path}?name=deploy`, { token: t })).body.application_credentials).toHaveLength(1);
    expect((await call('GET', `${path}?name=other`, { token: t })).body.application_credentials).toHaveLength(0);
    const got = await call('GET', `${path}/${c.id}`, { token: t });
    expect(got.body.application_credential).toMatchObject({ id: c.id, name: 'deploy' });
    expect(got.body.application_credential.secret).toBeUndefined();
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'deploy' } } }), 409);

    const byId = await signIn({ auth: { identity: { methods: ['application_credential'], application_credential: { id: c.id, secret: c.secret } } } });
    expect(byId.status, byId.text).toBe(201);
    expect(byId.body.token).toMatchObject({ methods: ['application_credential'], roles: [{ id: 'reader', name: 'reader' }], application_credential: { id: c.id, name: 'deploy', restricted: true } });
    const byName = await signIn({
      auth: { identity: { methods: ['application_credential'], application_credential: { name: 'deploy', user: { name: u.name, domain: { id: 'default' } }, secret: c.secret } } },
    });
    expect(byName.status, byName.text).toBe(201);
    expect((await signIn({ auth: { identity: { methods: ['application_credential'], application_credential: { id: c.id, secret: 'wrong' } } } })).body).toEqual(KEYSTONE_401);
    const credToken = byId.headers.get('x-subject-token')!;
    // A reader token from the credential reads, and may neither write nor manage credentials nor rescope.
    expect((await call('GET', '/v1/leases', { token: credToken })).status).toBe(200);
    expect((await call('POST', '/v1/leases', { token: credToken, body: {} })).status).toBe(403);
    expectKeystoneError(await call('POST', path, { token: credToken, body: { application_credential: { name: 'more' } } }), 403);
    expectKeystoneError(await signIn({ auth: { identity: { methods: ['token'], token: { id: credToken } } } }), 403);

    // Others: another user may not see or delete it; an admin may read but not create for the user.
    const other = await newUser();
    const ot = await tokenOf(other);
    expectKeystoneError(await call('GET', `${path}/${c.id}`, { token: ot }), 403);
    expectKeystoneError(await call('DELETE', `${path}/${c.id}`, { token: ot }), 403);
    expectKeystoneError(await call('GET', `/v3/users/${other.id}/application_credentials/${c.id}`, { token: ot }), 404);
    expect((await call('GET', `${path}/${c.id}`)).status).toBe(200);
    expectKeystoneError(await call('POST', path, { body: { application_credential: { name: 'by-admin' } } }), 403);

    expect((await call('DELETE', `${path}/${c.id}`, { token: t })).status).toBe(204);
    expectKeystoneError(await call('DELETE', `${path}/${c.id}`, { token: t }), 404);
    expect((await call('GET', '/v1/leases', { token: credToken })).status).toBe(401);
    expect((await signIn({ auth: { identity: { methods: ['application_credential'], application_credential: { id: c.id, secret: c.secret } } } })).body).toEqual(KEYSTONE_401);
  });

  it('refuses roles the token lacks, past expiries, access rules and hostile fields; honours a chosen secret and an expiry', async () => {
    const u = await newUser({ roles: ['reader'] });
    const t = await tokenOf(u);
    const path = `/v3/users/${u.id}/application_credentials`;
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'x', roles: [{ name: 'admin' }] } } }), 403);
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'x', expires_at: '2001-01-01T00:00:00' } } }), 400);
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'x', expires_at: 'soon' } } }), 400);
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'x', access_rules: [{ path: '/v1', method: 'GET', service: 'reservation' }] } } }), 400);
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'n'.repeat(256) } } }), 400);
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: { name: 'x', secret: 's'.repeat(4097) } } }), 400);
    expectKeystoneError(await call('POST', path, { token: t, body: { application_credential: {} } }), 400);

    const soon = new Date(Date.now() + 30 * 60_000).toISOString().replace('Z', '');
    const made = await call('POST', path, { token: t, body: { application_credential: { name: 'chosen', secret: 'my own secret', expires_at: soon, unrestricted: true } } });
    expect(made.status, made.text).toBe(201);
    expect(made.body.application_credential.secret).toBe('my own secret');
    const signed = await signIn({ auth: { identity: { methods: ['application_credential'], application_credential: { id: made.body.application_credential.id, secret: 'my own secret' } } } });
    expect(signed.status).toBe(201);
    // The token ends with the credential.
    expect(Date.parse(signed.body.token.expires_at)).toBeLessThanOrEqual(Date.parse(`${soon}Z`));
    // Unrestricted: its tokens may manage credentials.
    const more = await call('POST', path, { token: signed.headers.get('x-subject-token')!, body: { application_credential: { name: 'from-unrestricted' } } });
    expect(more.status, more.text).toBe(201);
  });
});

describe('Commissaire Basic user:password', () => {
  it('signs a user in with its password (htpasswd style), still takes a token as the password, and refuses a wrong one with 403', async () => {
    const u = await newUser({ roles: ['reader'], password: 'commctl pass:with colon' });
    const basic = (user: string, pw: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}` });
    const res = await call('GET', '/api/v0/clusters', { token: null, headers: basic(u.name, u.password) });
    expect(res.status, res.text).toBe(200);
    expect(Array.isArray(res.body)).toBe(true);
    // Cached now; still right.
    expect((await call('GET', '/api/v0/clusters', { token: null, headers: basic(u.name, u.password) })).status).toBe(200);
    expect((await call('GET', '/api/v0/clusters', { token: null, headers: basic(u.name, 'wrong') })).status).toBe(403);
    expect((await call('GET', '/api/v0/clusters', { token: null, headers: basic('nobody-at-all', u.password) })).status).toBe(403);
    expect((await call('GET', '/api/v0/clusters', { token: null, headers: basic(u.name, await tokenOf(u)) })).status).toBe(200);
    // A reader reads only.
    expect((await call('PUT', `/api/v0/cluster/${unique('c')}`, { token: null, headers: basic(u.name, u.password), body: {} })).status).toBe(403);
    // Other surfaces do not take a password (only Commissaire's htpasswd convention does).
    expect((await call('GET', '/v1/leases', { token: null, headers: basic(u.name, u.password) })).status).toBe(401);
  });
});
