import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ROLES } from '#core/identity/identity.ts';
import { LEASE_OPTIONS, leaseCommands } from './cli-lease.ts';
import { type CliContext, WAIT_OPTIONS } from './cli-progress.ts';
import { sitesCommands } from './cli-sites.ts';
import { taskCommands } from './cli-task.ts';
import { USER_OPTIONS, userCommands } from './cli-users.ts';

/**
 * `slipway`, the operator CLI (DESIGN.md §5, §8): `npm run slipway -- <command>`.
 *
 * It talks to the API over HTTP like any client. With no target flags it acts on the local stack
 * that PORT, SLIPWAY_DATA_DIR and SLIPWAY_ADMIN_TOKEN point at (the environment `npm start` was
 * given); `--api URL --token T` (or SLIPWAY_API_URL / SLIPWAY_TOKEN) points it elsewhere. The one
 * exception is the bootstrap path `token create --table NAME`, which writes the token straight
 * into the DynamoDB table with the caller's AWS credentials: that is how the first admin token
 * of a fresh deployment is made, when no token exists to call the API with.
 *
 * Exit codes: 0 success, 1 the request failed (API error, stack not running), 2 bad usage.
 * Secrets: the only token ever printed is the one `token create` just made, alone on the last
 * line of stdout so that scripts can take it with `| tail -1`.
 */

const PROG = 'npm run slipway --';

class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

class CliError extends Error {
  /** 1, or a waiting command's own status (cli-progress.ts: 3 timed out). */
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Options and help

const TARGET_OPTIONS = {
  api: { type: 'string' },
  token: { type: 'string' },
  'as-project': { type: 'string' },
} as const;

const OPTIONS = {
  ...TARGET_OPTIONS,
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
  project: { type: 'string' },
  role: { type: 'string', multiple: true },
  user: { type: 'string' },
  expires: { type: 'string' },
  description: { type: 'string' },
  table: { type: 'string' },
  region: { type: 'string' },
  'dynamodb-endpoint': { type: 'string' },
  ...WAIT_OPTIONS,
  ...LEASE_OPTIONS,
  ...USER_OPTIONS,
} as const;

type OptionName = keyof typeof OPTIONS;
type Values = {
  [K in OptionName]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string;
};

const TARGET_HELP = `Target (default: the local stack of \`npm start\` in this environment):
  --api URL          API base URL [$SLIPWAY_API_URL, else http://127.0.0.1:$PORT, PORT default 8080]
  --token TOKEN      token to call the API with [$SLIPWAY_TOKEN; for the local stack also
                     $SLIPWAY_ADMIN_TOKEN, else the file $SLIPWAY_DATA_DIR/admin-token
                     (data dir default .slipway)]
  --as-project P     project of the calling token, used in /v1.1/{P}/tokens paths [admin]`;

interface CommandSpec {
  name: string;
  options: OptionName[];
  /** Positional argument names after the command words. */
  args: string[];
  summary: string;
  help: string;
  run: (v: Values, args: string[]) => Promise<void>;
}

const COMMANDS: CommandSpec[] = [
  {
    name: 'token create',
    options: ['project', 'role', 'user', 'expires', 'description', 'json', 'table', 'region', 'dynamodb-endpoint', 'api', 'token', 'as-project'],
    args: [],
    summary: 'create a token; prints a summary, then the token alone on the last line',
    help: `Usage: ${PROG} token create --project P --role R [--role R2] [options]

Creates a token for project P with the given roles. Prints a short summary and then the new
token ALONE on the last line; it is shown only this once:
  TOKEN=$(npm run -s slipway -- token create --project lab --role member | tail -1)

Options:
  --project P          project the token acts for (required)
  --role R             role, repeatable or comma-separated (required): ${ROLES.join(', ')}
  --user U             user id recorded with the token [<project>-<first role>]
  --expires WHEN       30d, 12h, 90m (from now) or an ISO 8601 datetime [never]
  --description D      free text shown by \`token list\`
  --json               print the API's JSON answer instead (it contains the token)

Bootstrap (no API and no token needed; the first admin token of a fresh deployment):
  --table NAME         write the token straight into this DynamoDB table with your AWS credentials
  --region R           AWS region of the table [$AWS_REGION, $AWS_DEFAULT_REGION]
  --dynamodb-endpoint URL
                       DynamoDB endpoint to use instead of AWS (DynamoDB Local)
  e.g. ${PROG} token create --table slipway --region eu-west-1 --project admin --role admin

${TARGET_HELP}`,
    run: tokenCreate,
  },
  {
    name: 'token list',
    options: ['json', 'api', 'token', 'as-project'],
    args: [],
    summary: 'list tokens (id, project, user, roles, expiry; never secrets)',
    help: `Usage: ${PROG} token list [--json]

Lists every token: id, project, user, roles, expiry and description. Secrets are never shown.

Options:
  --json               print the API's JSON answer

${TARGET_HELP}`,
    run: tokenList,
  },
  {
    name: 'token revoke',
    options: ['api', 'token', 'as-project'],
    args: ['ID'],
    summary: 'revoke a token by its id (from `token list`)',
    help: `Usage: ${PROG} token revoke ID

Revokes the token with this id (the ID column of \`token list\`). The API refuses it from then
on; servers that validated it in the last few seconds may still accept it briefly (they cache
valid tokens for up to 10 s).

${TARGET_HELP}`,
    run: tokenRevoke,
  },
  {
    name: 'table backfill',
    options: ['table', 'region', 'dynamodb-endpoint', 'json'],
    args: [],
    summary: 'give records written before the fleet-scale indexes their index entries (once, after upgrading)',
    help: `Usage: ${PROG} table backfill --table NAME [--region R] [--dynamodb-endpoint URL] [--json]

Writes the index attributes and lookup items that records written by an older release lack:
every node (host pool, list indexes, address and capability lookups), every lease (the name
index), and the project task and design lists of Drydock. Run it once after deploying this
release over an existing table; it is idempotent and safe while the API runs (node writes are
conditioned on the node's version). A new table (and the local stack's) needs none of it.

Options:
  --table NAME         the DynamoDB table (required), with your AWS credentials
  --region R           AWS region of the table [$AWS_REGION, $AWS_DEFAULT_REGION]
  --dynamodb-endpoint URL
                       DynamoDB endpoint to use instead of AWS (DynamoDB Local)
  --json               print the counts as JSON`,
    run: tableBackfill,
  },
  {
    name: 'nodes list',
    options: ['project', 'json', 'api', 'token', 'as-project'],
    args: [],
    summary: 'list nodes (GET /v1.1/{project}/nodes)',
    help: `Usage: ${PROG} nodes list [--project P] [--json]

Lists the nodes visible in project P (all pages).

Options:
  --project P          project in the request path; must be the calling token's project
                       [--as-project, else admin]
  --json               print the nodes as JSON

${TARGET_HELP}`,
    run: (v) => listCollection(v, 'nodes'),
  },
  {
    name: 'leases list',
    options: ['project', 'json', 'api', 'token', 'as-project'],
    args: [],
    summary: 'list leases (GET /v1.1/{project}/leases)',
    help: `Usage: ${PROG} leases list [--project P] [--json]

Lists the leases visible in project P (all pages).

Options:
  --project P          project in the request path; must be the calling token's project
                       [--as-project, else admin]
  --json               print the leases as JSON

${TARGET_HELP}`,
    run: (v) => listCollection(v, 'leases'),
  },
];

// The command modules (infra/local/cli-*.ts), handed this file's helpers. Wrapped in arrows:
// some are consts defined further down.
const CONTEXT: CliContext = {
  prog: PROG,
  targetHelp: TARGET_HELP,
  target: (v) => resolveTarget(v as Values),
  request: (target, method, path, body) => request(target, method, path, body),
  asProject: (v) => asProject(v as Values),
  usage: (message, command) => new UsageError(message, command),
  fail: (message, exitCode) => new CliError(message, exitCode),
  out: (s) => out(s),
  printJson: (v) => printJson(v),
  table: (headers, rows) => table(headers, rows),
  clean: (v) => clean(v),
};
COMMANDS.push(...([...leaseCommands(CONTEXT), ...taskCommands(CONTEXT), ...sitesCommands(CONTEXT), ...userCommands(CONTEXT)] as CommandSpec[]));

const GROUPS = [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]!))];

function mainHelp(): string {
  const width = Math.max('help [command]'.length, ...COMMANDS.map((c) => c.name.length)) + 2;
  return `slipway: the Slipway operator CLI

Usage: ${PROG} <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}
  ${'help [command]'.padEnd(width)}show help for a command (also: <command> --help)

${TARGET_HELP}
  --json             print raw JSON (list commands)
  -h, --help         show help

Exit status: 0 ok, 1 the request failed (or what was waited for failed), 2 bad usage,
3 a --timeout ran out, 130 interrupted (Ctrl-C).
`;
}

function groupHelp(group: string): string {
  const cmds = COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  return `Usage: ${PROG} ${group} <${cmds.map((c) => c.name.split(' ')[1]).join('|')}> [options]

${cmds.map((c) => `  ${c.name.padEnd(14)}${c.summary}`).join('\n')}

Run \`${PROG} ${group} <command> --help\` for the options of each.
`;
}

// ---------------------------------------------------------------------------------------------
// Target resolution and HTTP

interface Target {
  api: string;
  token: string;
}

function envValue(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

function localApiUrl(): string {
  const port = envValue('PORT') ?? '8080';
  if (!/^\d+$/.test(port) || Number(port) > 65535) throw new UsageError(`PORT must be a TCP port number, got ${JSON.stringify(port)}`);
  return `http://127.0.0.1:${Number(port)}`;
}

function normalizeUrl(raw: string, what: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${what} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`${what} must be an http(s) URL, got ${JSON.stringify(raw)}`);
  return u.toString().replace(/\/+$/, '');
}

function resolveTarget(v: Values): Target {
  const local = localApiUrl();
  const api = normalizeUrl(v.api ?? envValue('SLIPWAY_API_URL') ?? local, v.api ? '--api' : 'SLIPWAY_API_URL');
  const explicit = v.token ?? envValue('SLIPWAY_TOKEN');
  if (explicit) return { api, token: explicit };
  // The local admin token is only ever sent to the local stack it belongs to.
  if (api !== local) throw new UsageError(`a token is required for ${api}: pass --token TOKEN or set SLIPWAY_TOKEN`);
  const adminEnv = envValue('SLIPWAY_ADMIN_TOKEN');
  if (adminEnv) return { api, token: adminEnv };
  const file = join(resolve(envValue('SLIPWAY_DATA_DIR') ?? '.slipway'), 'admin-token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { api, token };
  }
  throw new UsageError(
    `no token: pass --token TOKEN, or set SLIPWAY_TOKEN or SLIPWAY_ADMIN_TOKEN; the local stack writes ${file} when it starts (\`npm start\`)`,
  );
}

const REQUEST_TIMEOUT_MS = 30_000;

function networkCode(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
  return cause?.code ?? cause?.errors?.find((e) => e.code)?.code;
}

/** The message of an error body in any surface's format (Sahara/Blazar, Ironic, Drydock, gateway). */
function errorMessage(text: string): string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return text.trim().slice(0, 300) || '(empty response)';
  }
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.error_message === 'string') {
    try {
      const inner = JSON.parse(b.error_message) as { faultstring?: unknown };
      if (typeof inner.faultstring === 'string') return inner.faultstring;
    } catch {
      // a plain message
    }
    return b.error_message;
  }
  if (typeof b.message === 'string') return b.message;
  // Keystone's `{"error": {"code", "title", "message"}}` (/v3).
  const keystone = b.error as { message?: unknown } | undefined;
  if (typeof keystone?.message === 'string') return keystone.message;
  return text.trim().slice(0, 300);
}

async function request(target: Target, method: string, path: string, body?: unknown): Promise<unknown> {
  const url = `${target.api}${path}`;
  const headers: Record<string, string> = { Accept: 'application/json', 'X-Auth-Token': target.token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    const code = networkCode(err);
    if (code === 'ECONNREFUSED') {
      const isLocal = target.api === localApiUrl();
      throw new CliError(
        `the Slipway API is not running at ${target.api} (connection refused).\n` +
          (isLocal
            ? 'Start the local stack with `npm start` (same PORT and SLIPWAY_DATA_DIR as this command), or point the CLI elsewhere with --api URL --token TOKEN.'
            : 'Check the --api URL (or SLIPWAY_API_URL), or start the local stack with `npm start` and drop --api.'),
      );
    }
    if ((err as Error).name === 'TimeoutError') throw new CliError(`no answer from ${target.api} within ${REQUEST_TIMEOUT_MS / 1000} s`);
    throw new CliError(`cannot reach the Slipway API at ${target.api}: ${code ?? (err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    const message = errorMessage(text);
    const hint =
      res.status === 401 && /tenant/i.test(message)
        ? `\n/v1.1 paths must name the calling token's own project (this one named ${decodeURIComponent(path.split('/')[2] ?? '')}); admin tokens belong to project admin.`
        : '';
    throw new CliError(`${message} (HTTP ${res.status})${hint}`);
  }
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`the API answered ${method} ${path} with something that is not JSON (HTTP ${res.status})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Output

/** Server-supplied strings go to a terminal: no control characters. */
const clean = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v)).replace(/[\u0000-\u001f\u007f]/g, '?');

function table(headers: string[], rows: unknown[][]): string {
  const cells = rows.map((r) => r.map(clean));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(headers), ...cells.map(line)].join('\n');
}

function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}
const printJson = (v: unknown): void => out(JSON.stringify(v, null, 2));

// ---------------------------------------------------------------------------------------------
// Commands

/** `30d`, `12h`, `90m` from now, or an ISO 8601 datetime; returns an ISO string in UTC. */
export function parseExpires(raw: string, now = new Date()): string {
  const rel = /^(\d+)([mhd])$/.exec(raw);
  let at: number;
  if (rel) {
    const n = Number(rel[1]);
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd'];
    if (n <= 0) throw new UsageError('--expires must be a positive duration', 'token create');
    at = now.getTime() + n * unit;
  } else if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(raw) && !Number.isNaN(Date.parse(raw))) {
    at = Date.parse(raw);
    if (at <= now.getTime()) throw new UsageError(`--expires ${raw} is in the past`, 'token create');
  } else {
    throw new UsageError(`--expires must be like 30d, 12h, 90m or an ISO 8601 datetime, got ${JSON.stringify(raw)}`, 'token create');
  }
  if (!Number.isFinite(at) || at > 8.64e15) throw new UsageError(`--expires ${raw} is out of range`, 'token create');
  return new Date(at).toISOString();
}

interface TokenInfo {
  id: string;
  project_id: string;
  user_id: string;
  roles: string[];
  created_at?: string;
  expires_at: string | null;
  description?: string;
}

async function tokenCreate(v: Values): Promise<void> {
  if (!v.project) throw new UsageError('--project is required', 'token create');
  const roles = [...new Set((v.role ?? []).flatMap((r) => r.split(',')).map((r) => r.trim()))].filter(Boolean);
  if (!roles.length) throw new UsageError('--role is required', 'token create');
  const bad = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
  if (bad.length) throw new UsageError(`unknown role ${bad.join(', ')}: use ${ROLES.join(', ')}`, 'token create');
  const input = {
    project_id: v.project,
    roles,
    ...(v.user !== undefined ? { user_id: v.user } : {}),
    ...(v.expires !== undefined ? { expires_at: parseExpires(v.expires) } : {}),
    ...(v.description !== undefined ? { description: v.description } : {}),
  };

  let created: TokenInfo & { token: string };
  let where: string;
  if (v.table !== undefined) {
    for (const o of ['api', 'token', 'as-project'] as const) {
      if (v[o] !== undefined) throw new UsageError(`--${o} does not apply with --table (the token is written to DynamoDB directly)`, 'token create');
    }
    const made = await createInTable(v, input);
    created = made.created;
    where = `DynamoDB table ${v.table} ${made.where}`;
  } else {
    for (const o of ['region', 'dynamodb-endpoint'] as const) {
      if (v[o] !== undefined) throw new UsageError(`--${o} only applies with --table`, 'token create');
    }
    const target = resolveTarget(v);
    const res = (await request(target, 'POST', `/v1.1/${encodeURIComponent(asProject(v))}/tokens`, input)) as { token?: TokenInfo & { token?: string } };
    if (!res?.token?.token) throw new CliError('the API did not return a token');
    if (v.json) return printJson(res);
    created = res.token as TokenInfo & { token: string };
    where = target.api;
  }
  if (v.json) return printJson({ token: created });
  out(
    [
      `Created token ${created.id} (${where})`,
      `  project: ${clean(created.project_id)}   user: ${clean(created.user_id)}   roles: ${created.roles.map(clean).join(',')}`,
      `  expires: ${created.expires_at ?? 'never'}${created.description ? `   description: ${clean(created.description)}` : ''}`,
      'Keep it now: the token is not shown again.',
      created.token,
    ].join('\n'),
  );
}

/** `table backfill`: the one-off index backfills of issue 16, straight on the table. */
async function tableBackfill(v: Values): Promise<void> {
  if (!v.table) throw new UsageError('--table needs a table name', 'table backfill');
  const endpoint = v['dynamodb-endpoint'] ? normalizeUrl(v['dynamodb-endpoint'], '--dynamodb-endpoint') : undefined;
  const region = v.region ?? envValue('AWS_REGION') ?? envValue('AWS_DEFAULT_REGION') ?? (endpoint ? 'us-east-1' : undefined);
  if (!region) throw new UsageError('--region is required with --table (or set AWS_REGION)', 'table backfill');
  // Loaded here only: the SDK is heavy and the API commands do not need it.
  const [{ makeDynamo }, { backfillNodeIndexes }, { backfillLeaseNames }, { DynamoDrydockRepository }] = await Promise.all([
    import('#aws/dynamo/client.ts'),
    import('#aws/dynamo/nodes.ts'),
    import('#aws/dynamo/leases.ts'),
    import('#aws/dynamo/drydock.ts'),
  ]);
  const d = makeDynamo({ tableName: v.table, region, ...(endpoint ? { endpoint } : {}) });
  try {
    const counts = {
      nodes: await backfillNodeIndexes(d),
      leases: await backfillLeaseNames(d),
      drydock_project_records: await new DynamoDrydockRepository(d).backfillProjectLists(),
    };
    if (v.json) return printJson(counts);
    out(`Backfilled DynamoDB table ${v.table} (${endpoint ? `at ${endpoint}` : `in ${region}`}): ${counts.nodes} nodes, ${counts.leases} leases, ${counts.drydock_project_records} Drydock project records`);
  } catch (err) {
    const e = err as Error;
    if (e.name === 'ResourceNotFoundException') throw new CliError(`DynamoDB table ${v.table} not found${endpoint ? ` at ${endpoint}` : ` in ${region}`}`);
    if (e.name === 'CredentialsProviderError') throw new CliError(`no AWS credentials found (${e.message}); configure them (AWS_PROFILE, aws sso login, ...) and retry`);
    const code = networkCode(err) ?? (err as { code?: string }).code;
    if (code === 'ECONNREFUSED') throw new CliError(`DynamoDB is not reachable at ${endpoint ?? `the ${region} endpoint`} (connection refused)`);
    throw new CliError(`DynamoDB: ${e.name}: ${e.message}`);
  }
}

/** The bootstrap path: DynamoDB with the caller's AWS credentials, no API involved. */
async function createInTable(v: Values, input: Record<string, unknown>): Promise<{ created: TokenInfo & { token: string }; where: string }> {
  if (!v.table) throw new UsageError('--table needs a table name', 'token create');
  const endpoint = v['dynamodb-endpoint'] ? normalizeUrl(v['dynamodb-endpoint'], '--dynamodb-endpoint') : undefined;
  const region = v.region ?? envValue('AWS_REGION') ?? envValue('AWS_DEFAULT_REGION') ?? (endpoint ? 'us-east-1' : undefined);
  if (!region) throw new UsageError('--region is required with --table (or set AWS_REGION)', 'token create');
  // Loaded here only: the SDK is heavy and the API commands do not need it.
  const [{ buildDeps }, { issueToken, TokenCreate, tokenView }, { parseWith }] = await Promise.all([
    import('#aws/deps.ts'),
    import('#core/identity/tokens.ts'),
    import('#http/validate.ts'),
  ]);
  // NOTE: the DynamoDB client reads its region from process.env (buildDeps does not pass it on).
  process.env.AWS_REGION = region;
  const deps = buildDeps({ TABLE_NAME: v.table, AWS_REGION: region, ...(endpoint ? { DYNAMODB_ENDPOINT: endpoint } : {}) });
  try {
    const { token, record } = await issueToken(deps, parseWith(TokenCreate, input));
    return { created: { ...tokenView(record), token }, where: endpoint ? `at ${endpoint}` : `in ${region}` };
  } catch (err) {
    const e = err as Error & { $metadata?: { httpStatusCode?: number } };
    if (e.name === 'ValidationError' && !e.$metadata) throw new UsageError(e.message, 'token create');
    if (e.name === 'ResourceNotFoundException') throw new CliError(`DynamoDB table ${v.table} not found${endpoint ? ` at ${endpoint}` : ` in ${region}`}`);
    if (e.name === 'CredentialsProviderError') throw new CliError(`no AWS credentials found (${e.message}); configure them (AWS_PROFILE, aws sso login, ...) and retry`);
    const code = networkCode(err) ?? (err as { code?: string }).code;
    if (code === 'ECONNREFUSED') throw new CliError(`DynamoDB is not reachable at ${endpoint ?? `the ${region} endpoint`} (connection refused)`);
    throw new CliError(`DynamoDB: ${e.name}: ${e.message}`);
  }
}

const asProject = (v: Values): string => v['as-project'] ?? 'admin';

async function tokenList(v: Values): Promise<void> {
  const res = (await request(resolveTarget(v), 'GET', `/v1.1/${encodeURIComponent(asProject(v))}/tokens`)) as { tokens?: TokenInfo[] };
  if (v.json) return printJson(res);
  const tokens = res?.tokens ?? [];
  if (!tokens.length) return out('No tokens.');
  out(
    table(
      ['ID', 'PROJECT', 'USER', 'ROLES', 'EXPIRES', 'DESCRIPTION'],
      tokens.map((t) => [t.id, t.project_id, t.user_id, (t.roles ?? []).join(','), t.expires_at ?? 'never', t.description]),
    ),
  );
}

async function tokenRevoke(v: Values, args: string[]): Promise<void> {
  const id = args[0]!;
  await request(resolveTarget(v), 'DELETE', `/v1.1/${encodeURIComponent(asProject(v))}/tokens/${encodeURIComponent(id)}`);
  out(`Revoked token ${id}.`);
}

const count = (v: unknown): number | undefined => (Array.isArray(v) ? v.length : undefined);

const COLUMNS: Record<'nodes' | 'leases', [string, (r: Record<string, unknown>) => unknown][]> = {
  nodes: [
    ['ID', (n) => n.id],
    ['NAME', (n) => n.name],
    ['HOST_ID', (n) => n.host_id],
    ['RESERVABLE', (n) => n.reservable],
    ['VCPUS', (n) => n.vcpus],
    ['MEMORY_MB', (n) => n.memory_mb],
    ['ALLOCATIONS', (n) => count(n.allocations)],
  ],
  leases: [
    ['ID', (l) => l.id],
    ['NAME', (l) => l.name],
    ['PROJECT', (l) => l.project_id],
    ['STATUS', (l) => l.status],
    ['START', (l) => l.start_date],
    ['END', (l) => l.end_date],
    [
      'NODES',
      (l) =>
        Array.isArray(l.reservations)
          ? (l.reservations as { nodes?: unknown }[]).reduce((n, r) => n + (count(r.nodes) ?? 0), 0)
          : undefined,
    ],
  ],
};

/** Lists a Sahara-convention collection, following `markers.next` through every page. */
async function listCollection(v: Values, collection: 'nodes' | 'leases'): Promise<void> {
  const target = resolveTarget(v);
  const base = `/v1.1/${encodeURIComponent(v.project ?? asProject(v))}/${collection}`;
  const items: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  let marker: string | null | undefined;
  for (;;) {
    const res = (await request(target, 'GET', marker ? `${base}?marker=${encodeURIComponent(marker)}` : base)) as Record<string, unknown> | undefined;
    const page = res?.[collection];
    if (!Array.isArray(page)) throw new CliError(`the API answer has no "${collection}" list`);
    items.push(...(page as Record<string, unknown>[]));
    marker = (res?.markers as { next?: string | null } | undefined)?.next;
    if (!marker || seen.has(marker)) break;
    seen.add(marker);
  }
  if (v.json) return printJson({ [collection]: items });
  if (!items.length) return out(`No ${collection}.`);
  const cols = COLUMNS[collection];
  out(table(cols.map(([h]) => h), items.map((it) => cols.map(([, f]) => f(it)))));
}

// ---------------------------------------------------------------------------------------------
// Dispatch

function findCommand(words: string[]): { spec?: CommandSpec; rest: string[] } {
  const spec = COMMANDS.find((c) => {
    const parts = c.name.split(' ');
    return parts.every((p, i) => words[i] === p);
  });
  return { spec, rest: spec ? words.slice(spec.name.split(' ').length) : words };
}

export async function main(argv: string[]): Promise<number> {
  let values: Values;
  let positionals: string[];
  let given: OptionName[];
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true, tokens: true });
    values = parsed.values as Values;
    positionals = parsed.positionals;
    given = [...new Set(parsed.tokens.flatMap((t) => (t.kind === 'option' ? [t.name as OptionName] : [])))];
  } catch (err) {
    // Which command was meant, for a pointer to its help.
    const words = argv.filter((a) => !a.startsWith('-'));
    const { spec } = findCommand(words);
    return usage((err as Error).message, spec?.name);
  }

  const { spec, rest } = findCommand(positionals);
  if (positionals[0] === 'help' || (!spec && values.help)) {
    const topic = positionals[0] === 'help' ? positionals.slice(1) : positionals;
    if (topic.length === 0) return print(mainHelp());
    const t = findCommand(topic);
    if (t.spec && t.rest.length === 0) return print(`${t.spec.help}\n`);
    if (topic.length === 1 && GROUPS.includes(topic[0]!)) return print(groupHelp(topic[0]!));
    return usage(`no such command: ${topic.join(' ')}`);
  }
  if (!spec) {
    if (positionals.length === 0) return usage('missing command');
    if (positionals.length === 1 && GROUPS.includes(positionals[0]!)) {
      return usage(`${positionals[0]} needs a subcommand`, undefined, groupHelp(positionals[0]!));
    }
    return usage(`unknown command: ${positionals.join(' ')}`);
  }
  if (values.help) return print(`${spec.help}\n`);

  const foreign = given.filter((o) => !spec.options.includes(o) && o !== 'help');
  if (foreign.length) return usage(`${spec.name} does not take ${foreign.map((o) => `--${o}`).join(', ')}`, spec.name);
  if (rest.length < spec.args.length) return usage(`missing ${spec.args.slice(rest.length).join(' ')}`, spec.name);
  if (rest.length > spec.args.length) return usage(`unexpected argument ${JSON.stringify(rest[spec.args.length])}`, spec.name);
  for (const o of given) {
    const val = values[o];
    if (typeof val === 'string' && val === '') return usage(`--${o} must not be empty`, spec.name);
  }

  try {
    await spec.run(values, rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message, err.command ?? spec.name);
    if (err instanceof CliError) {
      process.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

function print(text: string): number {
  process.stdout.write(text);
  return 0;
}

function usage(message: string, command?: string, extra?: string): number {
  const hint = command ? `${PROG} ${command} --help` : `${PROG} --help`;
  process.stderr.write(`slipway: ${message}\n${extra ? `\n${extra}` : `Run \`${hint}\` for usage.\n`}`);
  return 2;
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError) {
        process.exitCode = usage(err.message, err.command);
        return;
      }
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
