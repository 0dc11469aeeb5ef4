import { type CliCommand, type CliContext, type CliValues, humanDuration } from './cli-progress.ts';

/** `slipway sites list`: every site with its agents' last contact (GET /v1.1/{project}/sites, admins). */

interface SiteAgent {
  id: string;
  description: string | null;
  token_active: boolean;
  last_contact_at: string | null;
  connected: boolean;
  version: string | null;
}
interface Site {
  name: string;
  connected: boolean;
  agents: SiteAgent[];
  jobs: { queued: number; running: number; truncated: boolean };
}

async function sitesList(ctx: CliContext, v: CliValues): Promise<void> {
  const res = (await ctx.request(ctx.target(v), 'GET', `/v1.1/${encodeURIComponent(ctx.asProject(v))}/sites`)) as { sites?: Site[] } | undefined;
  if (!Array.isArray(res?.sites)) throw ctx.fail('the API answer has no "sites" list');
  if (v.json) return ctx.printJson(res);
  if (!res.sites.length) return ctx.out('No sites (a site is the project of an agent token: `token create --project SITE --role agent`).');
  const now = Date.now();
  const jobs = (s: Site) => `${s.jobs.queued}${s.jobs.truncated ? '+' : ''}/${s.jobs.running}`;
  const rows = res.sites.flatMap((s) =>
    (s.agents.length ? s.agents : [undefined]).map((a) => [
      s.name,
      a?.id,
      a ? (a.connected ? 'yes' : 'no') : '-',
      a?.last_contact_at ? `${a.last_contact_at} (${humanDuration(now - Date.parse(a.last_contact_at))} ago)` : 'never',
      a?.version,
      a && !a.token_active ? 'inactive' : a ? 'active' : '-',
      jobs(s),
    ]),
  );
  ctx.out(ctx.table(['SITE', 'AGENT', 'CONNECTED', 'LAST_CONTACT', 'VERSION', 'TOKEN', 'JOBS(Q/R)'], rows));
}

export function sitesCommands(ctx: CliContext): CliCommand[] {
  return [
    {
      name: 'sites list',
      options: ['json', 'api', 'token', 'as-project'],
      args: [],
      summary: "list sites with their agents' last contact and job counts [admin]",
      help: `Usage: ${ctx.prog} sites list [--json]

Lists every site (the project of agent tokens) with each agent: its token id, whether it is
connected (contact in the last 90 s), its last claim or heartbeat (recorded at most every ~30 s),
the version it reported, and the site's queued/running agent jobs. Admin tokens only.

Options:
  --json               print the API's JSON answer

${ctx.targetHelp}`,
      run: (v) => sitesList(ctx, v),
    },
  ];
}
