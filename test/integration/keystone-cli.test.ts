import { describe, expect, inject, it } from 'vitest';
import { call, unique } from '../support/api.ts';
import { runCli } from '../support/cli.ts';

/**
 * `npm run slipway -- user create|list|delete` (infra/local/cli-users.ts) as an operator runs
 * it: a child process against the shared test stack, the password on standard input or in
 * `--password`, checked by what the API then does with that user.
 */
/** The CLI as an admin against the shared stack; `input` is its standard input (empty when not given). */
const slipway = (args: string[], input?: string) => runCli([...args, '--api', inject('apiUrl'), '--token', inject('adminToken')], { input: input ?? '' });

const signIn = (name: string, password: string) =>
  call('POST', '/v3/auth/tokens', { token: null, body: { auth: { identity: { methods: ['password'], password: { user: { name, domain: { id: 'default' }, password } } } } } });

describe('slipway user', () => {
  it('creates a user with the password from stdin, lists it, and deletes it (its tokens with it)', async () => {
    const name = unique('cli-user');
    const project = unique('cli-proj');
    const made = await slipway(['user', 'create', '--name', name, '--project', project, '--role', 'member', '--role', 'reader'], 'from stdin pw\n');
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toContain(`Created user ${name}`);
    expect(made.stdout + made.stderr).not.toContain('from stdin pw');
    // The newline ends the password; it is not part of it.
    const ok = await signIn(name, 'from stdin pw');
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.token.project.id).toBe(project);
    expect(ok.body.token.roles.map((r: any) => r.name).sort()).toEqual(['member', 'reader']);

    const list = await slipway(['user', 'list']);
    expect(list.code, list.stderr).toBe(0);
    const line = list.stdout.split('\n').find((l) => l.startsWith(name));
    expect(line).toMatch(new RegExp(`${project}\\s+member,reader`));
    const json = await slipway(['user', 'list', '--json']);
    expect(JSON.parse(json.stdout).users.some((u: any) => u.name === name)).toBe(true);

    const token = ok.headers.get('x-subject-token')!;
    const del = await slipway(['user', 'delete', name]);
    expect(del.code, del.stderr).toBe(0);
    expect((await call('GET', '/v1/leases', { token })).status).toBe(401);
    expect((await signIn(name, 'from stdin pw')).status).toBe(401);
    const again = await slipway(['user', 'delete', name]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`no user named ${name}`);
  });

  it('takes --password for scripts, reports a taken name with the API\'s message, and checks its usage', async () => {
    const name = unique('cli-pw');
    expect((await slipway(['user', 'create', '--name', name, '--project', 'p', '--role', 'member', '--password', 'scripted'])).code).toBe(0);
    expect((await signIn(name, 'scripted')).status).toBe(201);
    const dup = await slipway(['user', 'create', '--name', name, '--project', 'p', '--role', 'member', '--password', 'x']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/Duplicate entry found with name .* \(HTTP 409\)/);
    const noRole = await slipway(['user', 'create', '--name', unique('u'), '--project', 'p', '--password', 'x']);
    expect(noRole.code).toBe(2);
    expect(noRole.stderr).toContain('--role is required');
    const empty = await slipway(['user', 'create', '--name', unique('u'), '--project', 'p', '--role', 'member'], '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the password is empty');
    const badRole = await slipway(['user', 'create', '--name', unique('u'), '--project', 'p', '--role', 'root', '--password', 'x']);
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toMatch(/roles.*HTTP 400/s);
  });
});
