import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { buildDeps } from '../../layers/aws/deps.ts';
import { dynamoStats, makeDynamo } from '../../layers/aws/dynamo/client.ts';
import { ddDesignItem, ddTaskItem, DynamoDrydockRepository } from '../../layers/aws/dynamo/drydock.ts';
import { ensureTable } from '../../layers/aws/dynamo/local-table.ts';
import { HOST_LIST_MAX, listHosts } from '../../layers/core/commissaire/hosts.ts';
import { pyTime, type TaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import { DESIGN_LIST_MAX, listDesigns, listTasks, TASK_LIST_MAX } from '../../layers/core/drydock/tasks/service.ts';
import type { Ports } from '../../layers/core/ports.ts';
import { call, unique } from '../support/api.ts';
import { admin, batchPut, designs, hostAddress, hosts, member, seedDesigns, seedHosts, seedTasks, tasks } from '../support/ddcomm-seed.ts';

/**
 * Issue 16: Drydock task and design lists and Commissaire host lists are page reads. In a table
 * of this file's own, the same page is read at a small and at a large fleet, and what DynamoDB
 * reports it read (read units, calls) must be the same: the page costs what it answers, not
 * what the table holds. Seeded items of one kind have one size, so the units compare exactly.
 * Then, over HTTP on the shared stack, the shape clients see: a bare JSON array, the way on in
 * a `Link` header.
 */
const endpoint = () => inject('dynamoEndpoint');
let deps: Ports;
let d: ReturnType<typeof makeDynamo>;

/** What a call read: DynamoDB's consumed read units and the number of DynamoDB calls. */
async function cost<T>(fn: () => Promise<T>): Promise<{ result: T; readUnits: number; calls: number }> {
  dynamoStats.reset();
  dynamoStats.measureCapacity = true;
  try {
    const result = await fn();
    return { result, readUnits: dynamoStats.readUnits, calls: [...dynamoStats.calls.values()].reduce((a, b) => a + b, 0) };
  } finally {
    dynamoStats.measureCapacity = false;
  }
}

const SMALL = 100;
const LARGE = 2_000;
const PROJECT = 'fleet-proj';
const PROJECT_TASKS = 60;

beforeAll(async () => {
  const table = unique('fleet-ddcomm');
  await ensureTable(endpoint(), table);
  deps = buildDeps({ TABLE_NAME: table, DYNAMODB_ENDPOINT: endpoint() });
  d = makeDynamo({ tableName: table, endpoint: endpoint() });
  // The project's tasks are the oldest; the site's small fleet follows.
  await seedTasks(d, tasks(0, PROJECT_TASKS, PROJECT));
  await Promise.all([seedTasks(d, tasks(PROJECT_TASKS, SMALL, null)), seedDesigns(d, designs(0, SMALL)), seedHosts(d, hosts(0, SMALL))]);
});

describe('fleet scale: a list page costs the same at 100 and at 2,000 items', () => {
  it('Drydock tasks, designs and Commissaire hosts: equal read units and calls per page, every size', async () => {
    const measure = async () => ({
      tasks: await cost(() => listTasks(deps, admin, { limit: '50' })),
      tasksDefault: await cost(() => listTasks(deps, admin, {})),
      projectTasks: await cost(() => listTasks(deps, member(PROJECT), { limit: '50' })),
      designs: await cost(() => listDesigns(deps, admin, { limit: '50' })),
      hosts: await cost(() => listHosts(deps, admin, { limit: '50' })),
      hostsAfter: await cost(() => listHosts(deps, admin, { limit: '50', marker: hostAddress(49) })),
    });
    const small = await measure();
    // At 100 items the default answer is upstream's: every task, oldest first, no link.
    expect(small.tasksDefault.result.items).toHaveLength(SMALL);
    expect(small.tasksDefault.result.truncated).toBeUndefined();
    expect(small.tasksDefault.result.next).toBeUndefined();
    const created = small.tasksDefault.result.items.map((t) => t.created);
    expect(created).toEqual([...created].sort());

    const tasksAfter = await cost(() => listTasks(deps, admin, { limit: '50', marker: small.tasks.result.next! }));
    await Promise.all([
      seedTasks(d, tasks(SMALL, LARGE, null)),
      seedDesigns(d, designs(SMALL, LARGE)),
      seedHosts(d, hosts(SMALL, LARGE)),
    ]);
    const large = await measure();
    const tasksAfterLarge = await cost(() => listTasks(deps, admin, { limit: '50', marker: small.tasks.result.next! }));

    for (const k of ['tasks', 'projectTasks', 'designs', 'hosts', 'hostsAfter'] as const) {
      expect(large[k].result.items, k).toEqual(small[k].result.items);
      expect(large[k].readUnits, `${k} read units`).toBe(small[k].readUnits);
      expect(large[k].calls, `${k} calls`).toBe(small[k].calls);
      expect(small[k].readUnits, k).toBeGreaterThan(0);
    }
    expect(tasksAfterLarge.result.items).toEqual(tasksAfter.result.items);
    expect(tasksAfterLarge.readUnits).toBe(tasksAfter.readUnits);
    expect(tasksAfterLarge.calls).toBe(tasksAfter.calls);
    // The project's page holds its own tasks only, though 2,000 site tasks are newer.
    expect(large.projectTasks.result.items).toHaveLength(50);
    // A page of 50 tasks: one index query and one messages query per task, whatever the fleet.
    expect(large.tasks.calls).toBe(1 + 50);

    // The default answer beyond the cap: the newest TASK_LIST_MAX tasks, oldest first, and the
    // list is marked truncated (the route's Link names where it starts).
    const window = large.tasksDefault.result;
    expect(window.items).toHaveLength(TASK_LIST_MAX);
    expect(window.truncated).toBe(true);
    expect(window.items.at(-1)!.created).toBe(pyTime(new Date(Date.parse('2020-01-01T00:00:00.000Z') + (LARGE - 1) * 1000).toISOString()));
    // ... read at the cost of its window: more tasks do not make it dearer.
    await seedTasks(d, tasks(LARGE, LARGE + 500, null));
    const larger = await cost(() => listTasks(deps, admin, {}));
    expect(larger.readUnits).toBe(large.tasksDefault.readUnits);
    expect(larger.calls).toBe(large.tasksDefault.calls);
    expect(larger.calls).toBeLessThanOrEqual(1 + TASK_LIST_MAX + 1);
  });

  it('paging with limit and marker visits every item once, in list order (designs, hosts, a project\'s tasks)', async () => {
    const walk = async <T>(page: (q: Record<string, string>) => Promise<{ items: T[]; next?: string }>, limit: number) => {
      const seen: T[] = [];
      let q: Record<string, string> = { limit: String(limit) };
      for (let i = 0; i < 1000; i++) {
        const p = await page(q);
        seen.push(...p.items);
        if (p.next === undefined) return seen;
        q = { limit: String(limit), marker: p.next };
      }
      throw new Error('paging did not end');
    };
    const ids = await walk((q) => listDesigns(deps, admin, q), 333);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toHaveLength(LARGE);
    const addresses = (await walk((q) => listHosts(deps, admin, q), 700)).map((h) => h.address);
    expect(addresses).toEqual(Array.from({ length: LARGE }, (_, i) => hostAddress(i)));
    const own = await walk((q) => listTasks(deps, member(PROJECT), q), 7);
    expect(own).toHaveLength(PROJECT_TASKS);
    expect(own.map((t) => t.created)).toEqual(own.map((t) => t.created).sort());
    // A limit over the maximum is lowered to it; the default host window is the maximum.
    expect((await listDesigns(deps, admin, { limit: '100000' })).items).toHaveLength(DESIGN_LIST_MAX);
    const hostWindow = await listHosts(deps, admin, {});
    expect(hostWindow.items).toHaveLength(HOST_LIST_MAX);
    expect(hostWindow.next).toBe(hostAddress(HOST_LIST_MAX - 1));
  });

  it('another project\'s task as a marker is missing (404), as when shown', async () => {
    const site = (await listTasks(deps, admin, { limit: '1' })).items[0]!;
    await expect(listTasks(deps, member('someone-else'), { limit: '1', marker: site.task_id })).rejects.toMatchObject({ statusCode: 404 });
    await expect(listTasks(deps, admin, { limit: '0' })).rejects.toMatchObject({ statusCode: 400 });
    await expect(listHosts(deps, admin, { marker: 'not-an-address' })).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe('records written before the project lists', () => {
  it('a one-off backfill gives old project tasks and designs their list keys; a rerun changes nothing', async () => {
    const project = unique('old-proj');
    const [t] = tasks(5_000_000, 5_000_001, project);
    const [dsg] = designs(5_000_000, 5_000_001, project);
    // As the adapter wrote them before issue 16: no GSI1 keys.
    const old = (item: Record<string, unknown>) => Object.fromEntries(Object.entries(item).filter(([k]) => k !== 'GSI1PK' && k !== 'GSI1SK'));
    await batchPut(d, [old(ddTaskItem(t!)), old(ddDesignItem(dsg!))]);
    expect((await listTasks(deps, member(project), {})).items).toEqual([]);
    expect((await listDesigns(deps, member(project), {})).items).toEqual([]);
    const repo = new DynamoDrydockRepository(d);
    expect(await repo.backfillProjectLists()).toBe(2);
    expect((await listTasks(deps, member(project), {})).items.map((x) => x.task_id)).toEqual([t!.task_id]);
    expect((await listDesigns(deps, member(project), {})).items).toEqual([dsg!.design_id]);
    expect(await repo.getTask(t!.task_id)).toEqual(t);
    expect(await repo.backfillProjectLists()).toBe(0);
  });

  it('a backfill racing the task\'s own updates leaves the compare-and-set intact and the keys in place', async () => {
    const project = unique('race-proj');
    const [t] = tasks(6_000_000, 6_000_001, project).map((x): TaskRecord => ({ ...x, status: 'running' }));
    await batchPut(d, [Object.fromEntries(Object.entries(ddTaskItem(t!)).filter(([k]) => k !== 'GSI1PK' && k !== 'GSI1SK'))]);
    const repo = new DynamoDrydockRepository(d);
    // Ten updates one after the other (each from the version the previous wrote) beside the backfill.
    const updates = (async () => {
      let cur = t!;
      for (let i = 0; i < 10; i++) cur = await repo.updateTask(cur, { ...cur, retry: i + 1 });
      return cur;
    })();
    const [last] = await Promise.all([updates, repo.backfillProjectLists()]);
    expect(last.version).toBe(t!.version + 10);
    expect(await repo.getTask(t!.task_id)).toEqual(last);
    expect((await listTasks(deps, member(project), {})).items.map((x) => x.task_id)).toEqual([t!.task_id]);
  });
});

describe('over HTTP: upstream\'s bare arrays, the next page in a Link header', () => {
  it('GET /api/v1.0/tasks?limit=1 pages through tasks oldest first; bad limits and unknown markers are Drydock errors', async () => {
    const shared = makeDynamo({ tableName: 'slipway', endpoint: endpoint() });
    // Older than anything another file creates, so they are the first two of the list.
    const [a, b] = tasks(-1_000_000_000, -999_999_998, null).map((t) => ({ ...t, status: 'queued' as const }));
    await seedTasks(shared, [a!, b!]);
    const first = await call('GET', '/api/v1.0/tasks?limit=1');
    expect(first.status, first.text).toBe(200);
    expect(first.body.map((t: any) => t.task_id)).toEqual([a!.task_id]);
    expect(first.headers.get('link')).toBe(`</api/v1.0/tasks?limit=1&marker=${a!.task_id}>; rel="next"`);
    const second = await call('GET', `/api/v1.0/tasks?limit=1&marker=${a!.task_id}`);
    expect(second.body.map((t: any) => t.task_id)).toEqual([b!.task_id]);
    expect(Object.keys(second.body[0]).sort()).toEqual(Object.keys(first.body[0]).sort());

    const bad = await call('GET', '/api/v1.0/tasks?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ type: 'error', message: "'limit' must be a positive integer" });
    expect((await call('GET', `/api/v1.0/tasks?limit=1&marker=${randomUUID()}`)).status).toBe(404);
    // Clients that send nothing get a bare array, as upstream.
    const all = await call('GET', '/api/v1.0/tasks');
    expect(all.status).toBe(200);
    expect(Array.isArray(all.body)).toBe(true);
    expect(all.body.some((t: any) => t.task_id === a!.task_id) || all.headers.get('link') === `</api/v1.0/tasks?limit=${TASK_LIST_MAX}>; rel="first"`).toBe(true);
  });

  it('GET /api/v0/hosts?limit=1&marker=A answers the host after A; a bad limit is 400 Bad Request', async () => {
    const shared = makeDynamo({ tableName: 'slipway', endpoint: endpoint() });
    // 198.18.0.0/15 (benchmarking): no other file registers hosts there.
    const [h1, h2] = hosts(0, 2).map((h, i) => ({ ...h, address: `198.18.${i}.1` }));
    await seedHosts(shared, [h1!, h2!]);
    const res = await call('GET', `/api/v0/hosts?limit=1&marker=${h1!.address}`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.map((h: any) => h.address)).toEqual([h2!.address]);
    expect(res.text).not.toContain('ssh_priv_key');
    const whole = await call('GET', '/api/v0/hosts');
    expect(whole.body).toEqual(expect.arrayContaining([expect.objectContaining({ address: h1!.address }), expect.objectContaining({ address: h2!.address })]));
    const bad = await call('GET', '/api/v0/hosts?limit=x');
    expect(bad.status).toBe(400);
    expect(bad.text).toBe('Bad Request');
  });
});
