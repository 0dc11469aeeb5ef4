import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * What a function's code needs of the table and of the secrets key, read from the code (no
 * execution): test/infra/least-privilege.test.ts compares the synthesized grants with it, both
 * ways — a grant the code does not need fails, and so does a need nothing grants (which only AWS
 * would notice: the local emulators enforce no IAM).
 *
 * How, each step an over-approximation at most (never an under-approximation, as long as the code
 * keeps the shapes these patterns read):
 *  1. The code of a function is its bundle: esbuild with the deployed settings, unminified so that
 *     names survive; tree-shaking has left out every top-level function nothing reachable uses.
 *  2. The port methods that code calls: `deps.<port>.<method>(` (the name every use-case gives
 *     its ports), and through a local (`const store = req.deps.idempotency`); the kinds of secret
 *     it seals and opens (`secrets.seal("node-key"`…).
 *  3. What each adapter method of `layers/aws/dynamo` touches, from its source: the DynamoDB
 *     commands it (or the private methods and file-level helpers it calls) sends, the items of its
 *     transactions, the indexes it names, and the literal key prefixes of the key builders it
 *     calls (`NODE#`) — a sibling adapter's included (a lease commit writes node calendars with
 *     `nodeKey`).
 */
export const REPO = join(dirname(new URL(import.meta.url).pathname), '..', '..');
const read = (rel: string) => readFileSync(join(REPO, rel), 'utf8');

const ALIASES: Record<string, string> = { '#core/': 'layers/core/', '#http/': 'layers/http/', '#aws/': 'layers/aws/' };

function resolveSpec(fromRel: string, spec: string): string | undefined {
  for (const [alias, dir] of Object.entries(ALIASES)) if (spec.startsWith(alias)) return join(dir, spec.slice(alias.length));
  if (spec.startsWith('.')) return relative(REPO, resolve(REPO, dirname(fromRel), spec));
  return undefined;
}

/** Value imports of a module (type-only imports carry no code): `{ spec, names }`. */
function importsOf(src: string): { spec: string; names: string[] }[] {
  const out: { spec: string; names: string[] }[] = [];
  for (const m of src.matchAll(/^\s*(import|export)\s+(type\s+)?([^;]*?)\s+from\s+'([^']+)'/gms)) {
    if (m[2]) continue;
    const names = [...(m[3]!.match(/\{([^}]*)\}/)?.[1] ?? '').split(',')]
      .map((n) => n.trim())
      .filter((n) => n && !n.startsWith('type '))
      .map((n) => n.split(/\s+as\s+/)[0]!.trim());
    out.push({ spec: m[4]!, names });
  }
  return out;
}

/**
 * Steps 1 and 2: the code of a function is its bundle — esbuild with the deployed settings but
 * not minified, so that names survive for reading; tree-shaking has already left out every
 * top-level function nothing reachable refers to. Returns the bundle's text.
 */
export async function bundledCode(entry: string): Promise<string> {
  const { build } = await import('esbuild');
  const { esbuildOptions } = await import('../../infra/bundling.ts');
  const out = await build({ ...esbuildOptions(REPO, entry, join(REPO, 'node_modules/.cache/slipway/needs', `${entry}.mjs`)), minify: false, write: false });
  return out.outputFiles[0]!.text;
}

/** `port.method` pairs the code calls: `deps.<port>.<method>(`, and through a local (`const store = req.deps.idempotency`). */
export function portCalls(code: string): Set<string> {
  const calls = new Set<string>();
  for (const m of code.matchAll(/\bdeps\d*\.(\w+)\.(\w+)\(/g)) calls.add(`${m[1]}.${m[2]}`);
  for (const alias of code.matchAll(/\bconst (\w+) = (?:\w+\.)?deps\d*\.(\w+);/g)) {
    for (const m of code.matchAll(new RegExp(`\\b${alias[1]}\\.(\\w+)\\(`, 'g'))) calls.add(`${alias[2]}.${m[1]}`);
  }
  return calls;
}

const READ_COMMANDS = new Set(['Get', 'BatchGet', 'Query', 'TransactGet', 'Scan']);
const WRITE_COMMANDS = new Set(['Put', 'Update', 'Delete', 'BatchWrite', 'TransactWrite']);

export interface Touch {
  /** Partition key literals (`NODE#`, `COUNTER#host`) the code may build. */
  partitions: Set<string>;
  commands: Set<string>;
  indexes: Set<string>;
  /** Kinds of the transaction items the code builds (`Put`, `Update`, `Delete`, `ConditionCheck`). */
  txItems: Set<string>;
}

const ADAPTERS_DIR = 'layers/aws/dynamo';
/** A key literal: `NODE#` of `` `NODE#${id}` ``, `COMM#CLUSTER#`, a whole key such as `'COUNTER#host'`. */
const KEY_LITERAL = /[`'"]([A-Z][A-Z0-9_]*#(?:[A-Z][A-Z0-9_]*#)*[a-z]*)/g;

interface Unit {
  file: string;
  body: string;
}

/** File-level definitions (`const x = …`, `function x(…)`) of an adapter file, by name. */
function topLevelDefs(file: string): Map<string, Unit> {
  const src = read(file);
  const defs = new Map<string, Unit>();
  const starts = [...src.matchAll(/^(?:export )?(?:async )?(?:const|function|class) (\w+)/gm)].map((m) => ({ name: m[1]!, at: m.index }));
  starts.forEach((s, i) => defs.set(s.name, { file, body: src.slice(s.at, starts[i + 1]?.at ?? src.length) }));
  return defs;
}

/** Methods of the classes of an adapter file (two-space indented members), by `Class.method`. */
function methodsOf(file: string): Map<string, Unit> {
  const src = read(file);
  const out = new Map<string, Unit>();
  for (const cls of src.matchAll(/^export class (\w+)[^{]*\{\n([\s\S]*?)^\}/gm)) {
    const body = cls[2]!;
    const starts = [...body.matchAll(/^ {2}(?:private |protected |public )?(?:static )?(?:readonly )?(?:async )?(\w+)\s*[(<=:]/gm)].map((m) => ({ name: m[1]!, at: m.index }));
    starts.forEach((s, i) => out.set(`${cls[1]}.${s.name}`, { file, body: body.slice(s.at, starts[i + 1]?.at ?? body.length) }));
  }
  return out;
}

/** The class a port is built with, from the composition roots (`tokens: new DynamoTokenRepository(d)`). */
export function portAdapters(): Map<string, string> {
  const out = new Map<string, string>();
  const files = readdirSync(join(REPO, 'layers/aws'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.startsWith('dynamo/'));
  for (const f of files) for (const m of read(`layers/aws/${f}`).matchAll(/\b(\w+): new (Dynamo\w+)\(/g)) out.set(m[1]!, m[2]!);
  return out;
}

let adapterIndex: { methods: Map<string, Unit>; defs: Map<string, Map<string, Unit>>; classFile: Map<string, string> } | undefined;
function adapters() {
  if (adapterIndex) return adapterIndex;
  const files = readdirSync(join(REPO, ADAPTERS_DIR)).filter((f) => f.endsWith('.ts')).map((f) => `${ADAPTERS_DIR}/${f}`);
  const methods = new Map<string, Unit>();
  const defs = new Map<string, Map<string, Unit>>();
  const classFile = new Map<string, string>();
  for (const f of files) {
    defs.set(f, topLevelDefs(f));
    for (const [k, v] of methodsOf(f)) {
      methods.set(k, v);
      classFile.set(k.split('.')[0]!, f);
    }
  }
  adapterIndex = { methods, defs, classFile };
  return adapterIndex;
}

/** Step 3: what one unit of adapter code (a method or a helper) touches, with what it calls. */
function touchOf(unit: Unit, cls: string | undefined, seen = new Set<Unit>()): Touch {
  const t: Touch = { partitions: new Set(), commands: new Set(), indexes: new Set(), txItems: new Set() };
  if (seen.has(unit)) return t;
  seen.add(unit);
  const { methods, defs } = adapters();
  const src = unit.body;
  for (const m of src.matchAll(/new (\w+?)(?:Item)?Command\(/g)) t.commands.add(m[1]!);
  for (const m of src.matchAll(/IndexName: '(\w+)'/g)) t.indexes.add(m[1]!);
  for (const m of src.matchAll(/\b(Put|Update|Delete|ConditionCheck): \{/g)) t.txItems.add(m[1]!);
  for (const m of src.matchAll(KEY_LITERAL)) t.partitions.add(m[1]!);
  const merge = (o: Touch) => {
    for (const k of ['partitions', 'commands', 'indexes', 'txItems'] as const) for (const v of o[k]) t[k].add(v);
  };
  if (cls) for (const m of src.matchAll(/\bthis\.(\w+)\(/g)) {
    const method = methods.get(`${cls}.${m[1]}`);
    if (method) merge(touchOf(method, cls, seen));
  }
  // File-level helpers and key builders of this file, and those imported from sibling adapters
  // (client.ts's query helpers send QueryCommand).
  const local = defs.get(unit.file)!;
  const imported = new Map<string, Unit>();
  for (const { spec, names } of importsOf(read(unit.file))) {
    const r = resolveSpec(unit.file, spec);
    if (!r?.startsWith(`${ADAPTERS_DIR}/`)) continue;
    for (const n of names) {
      const d = defs.get(r)?.get(n);
      if (d) imported.set(n, d);
    }
  }
  // A call, not a method call (`x.f(`), a spread included (`...jobKey(id)`).
  for (const m of src.matchAll(/(?<=^|[^\w$.]|\.\.\.)(\w+)\s*\(/gm)) {
    const d = local.get(m[1]!) ?? imported.get(m[1]!);
    if (d && d !== unit) merge(touchOf(d, undefined, seen));
  }
  // Key builders used without a call (`hostCounterKey`, a constant key).
  for (const [name, d] of [...local, ...imported]) {
    if (d !== unit && new RegExp(`(?<=^|[^\\w$.]|\\.\\.\\.)${name}(?![\\w(])`, 'm').test(src) && !/^(?:export )?class /.test(d.body)) merge(touchOf(d, undefined, seen));
  }
  return t;
}

/**
 * Adapter methods that write or delete an item by a key read from the table (`Key: { PK: item.PK, … }`
 * of a query's result) rather than built by a key builder: the partitions those keys are in, as
 * the query that found them says (a token revoked by id is found through GSI3, a purged task's
 * items through its own partition). The least-privilege test checks this list against the
 * adapters' sources, so that a new such method cannot go unnoticed.
 */
export const DATA_KEYS: Record<string, string[]> = {
  'DynamoTokenRepository.revoke': ['TOKEN#'],
  'DynamoDrydockRepository.purgeTasks': ['DDTASK#'],
  'DynamoLeaseRepository.commit': ['LEASE#'],
  'DynamoLeaseRepository.delete': ['LEASE#'],
  // The due- and running-event queries drop the index entries of event rows stored before META held their state.
  'DynamoLeaseEventStore.current': ['LEASE#'],
  // One-off backfills for records written before issue 16's indexes (`npm run slipway -- backfill`), in no function.
  'layers/aws/dynamo/leases.ts:backfillLeaseNames': ['LEASE#'],
};

/**
 * `Class.method` of every adapter method whose own body builds a key from data (`PK: row.PK`),
 * and `file:function` of such file-level helpers (none today: they would need their callers listed).
 */
export function dataKeyMethods(): string[] {
  const { methods, defs } = adapters();
  const dataKey = (u: Unit) => /\bPK: \w+!?\.PK\b/.test(u.body) && !/^(?:export )?class /.test(u.body);
  const helpers = [...defs].flatMap(([file, d]) => [...d].filter(([, u]) => dataKey(u)).map(([name]) => `${file}:${name}`));
  return [...[...methods].filter(([, u]) => dataKey(u)).map(([k]) => k), ...helpers].sort();
}

/** IAM actions of the commands (a transaction needs those of its items: `txItems`). */
const READ_ACTIONS: Record<string, string> = { Get: 'GetItem', BatchGet: 'BatchGetItem', Query: 'Query', TransactGet: 'GetItem', Scan: 'Scan' };
const WRITE_ACTIONS: Record<string, string> = { Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem', BatchWrite: 'BatchWriteItem' };
const TX_ACTIONS: Record<string, string> = { Put: 'PutItem', Update: 'UpdateItem', Delete: 'DeleteItem', ConditionCheck: 'ConditionCheckItem' };

export interface TableNeeds {
  /** Partitions of the methods that read, and their read actions. */
  readPartitions: Set<string>;
  readActions: Set<string>;
  /** Partitions of the methods that write, and their write actions. */
  writePartitions: Set<string>;
  writeActions: Set<string>;
  /** Indexes queried. */
  indexes: Set<string>;
  /** Port methods of a table adapter the analysis could not find (the test fails on any). */
  unknown: string[];
}

/**
 * What the port methods touch, merged per method: a method that reads puts its partitions among
 * the read ones, a method that writes among the written ones (both, for a method doing both).
 */
export function tableNeeds(calls: Set<string>): TableNeeds {
  const ports = portAdapters();
  const { methods } = adapters();
  const out: TableNeeds = { readPartitions: new Set(), readActions: new Set(), writePartitions: new Set(), writeActions: new Set(), indexes: new Set(), unknown: [] };
  for (const call of calls) {
    const [port, method] = call.split('.') as [string, string];
    const cls = ports.get(port);
    if (!cls) continue; // not a table port (secrets, blobs, callbacks, runners...)
    const unit = methods.get(`${cls}.${method}`);
    if (!unit) {
      out.unknown.push(`${call} (${cls}.${method})`);
      continue;
    }
    const t = touchOf(unit, cls);
    for (const p of DATA_KEYS[`${cls}.${method}`] ?? []) t.partitions.add(p);
    const reads = [...t.commands].filter((c) => READ_COMMANDS.has(c));
    const writes = [...t.commands].filter((c) => WRITE_COMMANDS.has(c));
    for (const c of reads) out.readActions.add(READ_ACTIONS[c]!);
    for (const c of writes) {
      if (c === 'TransactWrite') for (const k of t.txItems.size > 0 ? t.txItems : Object.keys(TX_ACTIONS)) out.writeActions.add(TX_ACTIONS[k]!);
      else out.writeActions.add(WRITE_ACTIONS[c]!);
    }
    for (const p of t.partitions) {
      if (reads.length > 0) out.readPartitions.add(p);
      if (writes.length > 0) out.writePartitions.add(p);
    }
    for (const ix of t.indexes) out.indexes.add(ix);
  }
  return out;
}

/**
 * `seal`/`open` kinds the code uses: `secrets.seal("kind"`, `sealSecrets(` (BMC passwords),
 * `openSecrets(…, "kind"`, and a holder table of kinds opened through a variable (the agent's
 * job payloads, `SECRET_HOLDERS`).
 */
export function secretNeeds(code: string): { seal: Set<string>; open: Set<string> } {
  const out = { seal: new Set<string>(), open: new Set<string>() };
  for (const m of code.matchAll(/\bsecrets\.(seal|open)\("([\w-]+)"/g)) out[m[1] as 'seal' | 'open'].add(m[2]!);
  if ([...code.matchAll(/\bsealSecrets\(/g)].length > [...code.matchAll(/function sealSecrets\(/g)].length) out.seal.add('bmc-password');
  for (const m of code.matchAll(/\bopenSecrets\([^,]+,\s*"([\w-]+)"/g)) out.open.add(m[1]!);
  if (/\bopenSecrets\(\w+\.secrets, kind\b/.test(code)) {
    const holders = /SECRET_HOLDERS = (\{[^}]*\})/.exec(code);
    if (!holders) throw new Error('openSecrets with a variable kind, but no SECRET_HOLDERS table to read the kinds from');
    for (const m of holders[1]!.matchAll(/"([\w-]+)"/g)) out.open.add(m[1]!);
  }
  return out;
}

/** Every key-like literal of the adapters (`NODE#`, `COUNTER#host`, and index and sort-key values alike). */
export function adapterLiterals(): Set<string> {
  const out = new Set<string>();
  for (const f of readdirSync(join(REPO, ADAPTERS_DIR)).filter((x) => x.endsWith('.ts'))) {
    for (const m of read(`${ADAPTERS_DIR}/${f}`).matchAll(KEY_LITERAL)) out.add(m[1]!);
  }
  return out;
}
