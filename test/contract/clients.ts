import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * Runs the REAL upstream Python clients (Debian's python3-blazarclient and python3-saharaclient,
 * client-contracts.md §1 and §3) against the local stack. Scripts use the library form the
 * contracts document (keystoneauth1 session + `token_endpoint.Token`) and print one JSON
 * document on stdout; the `blazar` CLI is run the way operators run it.
 *
 * Arguments reach Python through the `SLIPWAY_ARGS` environment variable (JSON), never by
 * pasting values into the script text.
 */
export interface ProcResult {
  /** Exit status, or null when the process was killed (timeout). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * The interpreter that sees Debian's dist-packages. A pyenv shim earlier on PATH would not, so
 * prefer the system interpreter. (No override: the suite does not read the caller's
 * environment, see test/support/global-setup.ts.)
 */
export function pythonBin(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** The `blazar` console script (its shebang names the system interpreter). */
export function blazarBin(): string {
  return existsSync('/usr/bin/blazar') ? '/usr/bin/blazar' : 'blazar';
}

/** The child's environment: ours, minus anything that would reroute or re-authenticate it. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^OS_/.test(k) || /^(https?|all|no)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONWARNINGS: 'ignore',
    LC_ALL: 'C.UTF-8',
    ...extra,
  };
}

export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<ProcResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: childEnv(opts.env ?? {}), stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** `python3 -c SCRIPT` (or `python3 FILE` with `file: true`) with extra environment variables. */
export function runPython(
  script: string,
  opts: { env?: Record<string, string>; timeoutMs?: number; file?: boolean } = {},
): Promise<ProcResult> {
  const args = opts.file ? [script] : ['-c', script];
  return runCommand(pythonBin(), args, { env: opts.env ?? {}, timeoutMs: opts.timeoutMs ?? 30_000 });
}

/** A readable account of a finished process, for assertion messages. */
export function explain(r: ProcResult): string {
  return `exit=${r.code}${r.signal ? ` signal=${r.signal}` : ''}${r.timedOut ? ' (timed out)' : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/**
 * The JSON document in a CLI's stdout. cliff prints a header line such as `Created a new
 * host:` before the `-f json` document, so parsing starts at the first `{` or `[` that begins
 * a line.
 */
export function jsonFrom(stdout: string): any {
  const m = /^[[{]/m.exec(stdout);
  if (!m) throw new Error(`no JSON document in output:\n${stdout}`);
  return JSON.parse(stdout.slice(m.index));
}

// ---------------------------------------------------------------------------------------------
// Python library form

const PRELUDE = `
import json, os, sys
from keystoneauth1 import session
from keystoneauth1.token_endpoint import Token
ARGS = json.loads(os.environ.get('SLIPWAY_ARGS') or '{}')
def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str))
    sys.stdout.write('\\n')
`;

/** Preamble: `c` is `blazarclient.client.Client('1', session=...)` on `<api>/v1`. */
const BLAZAR_PRELUDE = `${PRELUDE}
from blazarclient import client as blazar_client
from blazarclient import exception as blazar_exception
c = blazar_client.Client('1', session=session.Session(auth=Token(os.environ['SLIPWAY_URL'] + '/v1', os.environ['SLIPWAY_TOKEN'])))
def blazar_error(e):
    # BlazarClientException keeps the HTTP status in kwargs['code']; its class attribute
    # named code stays at the default 500.
    return {'code': e.kwargs.get('code'), 'message': str(e), 'type': type(e).__name__}
`;

/**
 * Preamble: `sc` is `saharaclient.client.Client('1.1', session=..., sahara_url=<api>/v1.1/<project>)`
 * and `nodes` / `leases` are generic saharaclient resource managers over our native
 * collections (saharaclient has no such managers), built on `saharaclient.api.base` exactly as
 * its own managers (e.g. `ClusterManager.list`) are.
 */
const SAHARA_PRELUDE = `${PRELUDE}
from saharaclient import client as sahara_client
from saharaclient.api import base
url = os.environ['SLIPWAY_URL'] + '/v1.1/' + os.environ['SLIPWAY_PROJECT']
sc = sahara_client.Client('1.1', session=session.Session(auth=Token(url, os.environ['SLIPWAY_TOKEN'])), sahara_url=url)

class Collection(base.ResourceManager):
    resource_class = base.Resource
    plural = None
    singular = None
    def list(self, search_opts=None, limit=None, marker=None, sort_by=None, reverse=None):
        query = base.get_query_string(search_opts, limit=limit, marker=marker, sort_by=sort_by, reverse=reverse)
        return self._page('/%s%s' % (self.plural, query), self.plural, limit)
    def get(self, obj_id):
        return self._get('/%s/%s' % (self.plural, obj_id), self.singular)

class NodeManager(Collection):
    plural, singular = 'nodes', 'node'

class LeaseManager(Collection):
    plural, singular = 'leases', 'lease'

# The managers share saharaclient's own HTTP client (the one sc.clusters uses).
nodes = NodeManager(sc.clusters.api)
leases = LeaseManager(sc.clusters.api)

def page_view(page):
    return {'ids': [r.id for r in page], 'items': [r.to_dict() for r in page], 'prev': page.prev, 'next': page.next}

def api_error(e):
    return {'error_code': e.error_code, 'error_name': e.error_name, 'error_message': e.error_message, 'type': type(e).__name__}
`;

export interface LibOptions {
  apiUrl: string;
  token: string;
  args?: unknown;
  timeoutMs?: number;
}

async function runLib(prelude: string, body: string, env: Record<string, string>, opts: LibOptions): Promise<any> {
  const r = await runPython(`${prelude}\n${body}\n`, {
    env: { SLIPWAY_URL: opts.apiUrl, SLIPWAY_TOKEN: opts.token, SLIPWAY_ARGS: JSON.stringify(opts.args ?? {}), ...env },
    timeoutMs: opts.timeoutMs ?? 30_000,
  });
  if (r.code !== 0) throw new Error(`python client script failed: ${explain(r)}`);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last);
  } catch {
    throw new Error(`python client script printed no JSON: ${explain(r)}`);
  }
}

/** Runs `body` after the blazarclient preamble; returns what it `emit`ted last. */
export function blazarLib(body: string, opts: LibOptions): Promise<any> {
  return runLib(BLAZAR_PRELUDE, body, {}, opts);
}

/** Runs `body` after the saharaclient preamble for `project`; returns what it `emit`ted last. */
export function saharaLib(body: string, opts: LibOptions & { project: string }): Promise<any> {
  return runLib(SAHARA_PRELUDE, body, { SLIPWAY_PROJECT: opts.project }, opts);
}

// ---------------------------------------------------------------------------------------------
// The blazar CLI

/** `blazar --os-auth-type admin_token --os-endpoint <api>/v1 --os-token T <args...>` */
export function blazarCli(apiUrl: string, token: string, args: readonly string[], timeoutMs = 30_000): Promise<ProcResult> {
  return runCommand(blazarBin(), ['--os-auth-type', 'admin_token', '--os-endpoint', `${apiUrl}/v1`, '--os-token', token, ...args], {
    timeoutMs,
  });
}
