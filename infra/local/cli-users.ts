import type { CliCommand, CliContext, CliValues } from './cli-progress.ts';

/**
 * `slipway user create|list|delete`: Keystone users (issue 15), through the API's `/v3/users`
 * with the CLI's (admin) token, like every other command. A password is read from standard
 * input (a terminal prompt does not echo it), or taken from `--password` for scripts; it is
 * never printed.
 */
export const USER_OPTIONS = {
  name: { type: 'string' },
  password: { type: 'string' },
} as const;

/** Keystone's `max_password_length`; the API refuses more anyway, this just stops reading. */
const MAX_PASSWORD_BYTES = 4096;

interface UserInfo {
  id: string;
  name: string;
  default_project_id?: string;
  roles?: string[];
  description?: string;
}

/** A password from a terminal without echo, or the first line of piped input. */
async function readPassword(ctx: CliContext): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) {
    process.stderr.write('Password: ');
    stdin.setRawMode(true);
    stdin.resume();
    try {
      return await new Promise<string>((resolve, reject) => {
        let typed = '';
        stdin.on('data', (b: Buffer) => {
          for (const ch of b.toString('utf8')) {
            if (ch === '\r' || ch === '\n') return resolve(typed);
            if (ch === '\u0003') return reject(ctx.fail('interrupted', 130));
            if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
            else typed += ch;
          }
        });
      });
    } finally {
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    }
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > MAX_PASSWORD_BYTES + 2) break;
  }
  // One line: `echo pw | …` and a here-string end in a newline that is not part of the password.
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/, 1)[0] ?? '';
}

async function userCreate(ctx: CliContext, v: CliValues): Promise<void> {
  const cmd = 'user create';
  if (typeof v.name !== 'string') throw ctx.usage('--name is required', cmd);
  if (typeof v.project !== 'string') throw ctx.usage('--project is required', cmd);
  const roles = Array.isArray(v.role) ? v.role : [];
  if (!roles.length) throw ctx.usage('--role is required', cmd);
  const target = ctx.target(v);
  const password = typeof v.password === 'string' ? v.password : await readPassword(ctx);
  if (!password) throw ctx.usage('the password is empty (give it on standard input, or --password)', cmd);
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) throw ctx.usage(`the password is longer than ${MAX_PASSWORD_BYTES} bytes`, cmd);
  const body = {
    user: {
      name: v.name,
      password,
      default_project_id: v.project,
      roles,
      ...(typeof v.description === 'string' ? { description: v.description } : {}),
    },
  };
  const res = (await ctx.request(target, 'POST', '/v3/users', body)) as { user?: UserInfo } | undefined;
  if (!res?.user?.id) throw ctx.fail('the API did not return the user');
  if (v.json) return ctx.printJson(res);
  ctx.out(`Created user ${ctx.clean(res.user.name)} (id ${ctx.clean(res.user.id)}) in project ${ctx.clean(res.user.default_project_id)} with role ${roles.join(', ')}`);
}

async function userList(ctx: CliContext, v: CliValues): Promise<void> {
  const res = (await ctx.request(ctx.target(v), 'GET', '/v3/users')) as { users?: UserInfo[] } | undefined;
  const users = res?.users;
  if (!Array.isArray(users)) throw ctx.fail('the API answer has no "users" list');
  if (v.json) return ctx.printJson({ users });
  if (!users.length) return ctx.out('No users.');
  ctx.out(ctx.table(['NAME', 'ID', 'PROJECT', 'ROLES', 'DESCRIPTION'], users.map((u) => [u.name, u.id, u.default_project_id, (u.roles ?? []).join(','), u.description])));
}

async function userDelete(ctx: CliContext, v: CliValues, args: string[]): Promise<void> {
  const name = args[0]!;
  const target = ctx.target(v);
  const res = (await ctx.request(target, 'GET', `/v3/users?name=${encodeURIComponent(name)}`)) as { users?: UserInfo[] } | undefined;
  const user = res?.users?.[0];
  if (!user) throw ctx.fail(`no user named ${ctx.clean(name)}`);
  await ctx.request(target, 'DELETE', `/v3/users/${encodeURIComponent(user.id)}`);
  ctx.out(`Deleted user ${ctx.clean(user.name)} (id ${ctx.clean(user.id)}), its application credentials and its tokens`);
}

export function userCommands(ctx: CliContext): CliCommand[] {
  return [
    {
      name: 'user create',
      options: ['name', 'project', 'role', 'password', 'description', 'json', 'api', 'token', 'as-project'],
      args: [],
      summary: 'create a user who signs in with a password (OpenStack clients, the console, Commissaire)',
      help: `Usage: ${ctx.prog} user create --name N --project P --role R [--role R2] [--password PW]

Creates user N in project P with the given roles (admin, member, reader). The password is read
from standard input: typed at a prompt that does not echo it, or piped:
  printf '%s\\n' "$PW" | ${ctx.prog} user create --name alice --project lab --role member
--password PW takes it from the command line instead, for scripts (it is then visible to other
users of this machine in the process list).

The user then signs in with Keystone's password method (\`openstack --os-cloud …\`, the web
console) and with \`Basic\` credentials on Commissaire. Names are unique, at most 255 bytes,
without ':'; passwords at most 4096 bytes.

Options:
  --name N             user name (required)
  --project P          the user's project (required)
  --role R             role in that project (required; repeat for more)
  --password PW        the password, instead of standard input
  --description D      free text shown by \`user list\`
  --json               print the API's JSON answer

${ctx.targetHelp}`,
      run: (v) => userCreate(ctx, v),
    },
    {
      name: 'user list',
      options: ['json', 'api', 'token', 'as-project'],
      args: [],
      summary: 'list users (name, id, project, roles)',
      help: `Usage: ${ctx.prog} user list [--json]

Lists every user: name, id, project, roles and description. Passwords are never shown.

${ctx.targetHelp}`,
      run: (v) => userList(ctx, v),
    },
    {
      name: 'user delete',
      options: ['api', 'token', 'as-project'],
      args: ['NAME'],
      summary: 'delete a user, its application credentials and its tokens',
      help: `Usage: ${ctx.prog} user delete NAME

Deletes the user named NAME with its application credentials, and revokes every token it holds
(other API processes stop accepting them within 10 s, a Commissaire password likewise).

${ctx.targetHelp}`,
      run: (v, args) => userDelete(ctx, v, args),
    },
  ];
}
