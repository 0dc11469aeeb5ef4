import { ValidationError } from '../../errors.ts';
import { NodeFilterSet, type NodeFilter, type SetType } from './filter-schema.ts';
import { nodeNames, type SiteDesign, uniqueDocuments } from './model.ts';
import { type ResolvedNode, resolveLenient } from './resolve.ts';

export { NodeFilter, NodeFilterSet, SET_TYPES, type SetType } from './filter-schema.ts';

/**
 * Node filters (upstream-apis.md §1.5), evaluated on the effective nodes (after profile
 * inheritance, as upstream compiles the design before filtering):
 *
 * 1. Universe = every BaremetalNode; a null or absent filter selects them all.
 * 2. Each `filter_set` element yields one candidate set per present, non-empty criterion:
 *    - `node_names`: nodes with one of those names;
 *    - `node_tags`: nodes carrying **any** listed tag (`metadata.tags`);
 *    - `rack_names`: nodes whose `metadata.rack` is listed;
 *    - `node_labels`: nodes whose `metadata.owner_data` has **every** listed pair. This is the
 *      AND of upstream's documentation (task.rst's worked example); upstream's code ORs the
 *      pairs (§1.5 ⚠, §7 trap 5) — we follow the documentation, as the issue asks;
 *    - `rack_labels`: the whole universe, as documented ("not implemented" upstream).
 *      `validateDesign` warns about BootActions that use it (SW4004).
 * 3. The element's sets combine with its `filter_type` (`union` = any, `intersection` = all).
 * 4. The elements' results combine with `filter_set_type`.
 *
 * NOTE(design): the reference is silent on degenerate filters; upstream's code returns None or
 * crashes. Here an element without any criterion selects no node, and an empty `filter_set`
 * selects no node — a filter never widens to "everything" by accident.
 */

/**
 * Validate a node filter as a client sent it; null/undefined mean "no filter".
 *
 * @throws ValidationError naming the first problem (unknown key, bad `filter_set_type`, …).
 */
export function parseNodeFilter(raw: unknown): NodeFilterSet | null {
  if (raw === null || raw === undefined) return null;
  const r = NodeFilterSet.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? `node_filter.${issue.path.join('.')}` : 'node_filter';
    throw new ValidationError(`Invalid ${where}: ${issue?.message ?? 'invalid'}`, 'INVALID_NODE_FILTER');
  }
  return r.data;
}

/**
 * The names of the nodes `filter` selects, in design order.
 *
 * @throws ValidationError when `filter` is not a valid node filter.
 * @example
 * applyNodeFilter(design, {
 *   filter_set_type: 'union',
 *   filter_set: [{ filter_type: 'intersection', node_tags: ['compute'], node_labels: { zone: 'a' } }],
 * }) // ['rack1-n02']
 */
export function applyNodeFilter(design: SiteDesign, filter: unknown): string[] {
  const nodes = effectiveNodes(design);
  const universe = nodes.map((n) => n.name);
  const parsed = parseNodeFilter(filter);
  if (parsed === null) return universe;
  const selected = combine(
    parsed.filter_set_type,
    parsed.filter_set.map((f) => applyElement(f, nodes, universe)),
  );
  return universe.filter((n) => selected.has(n));
}

/** Each node once (the first document of a name), resolved. */
function effectiveNodes(design: SiteDesign): ResolvedNode[] {
  return uniqueDocuments(design, 'BaremetalNode').map((doc) => resolveLenient(design, doc));
}

function applyElement(f: NodeFilter, nodes: ResolvedNode[], universe: string[]): Set<string> {
  const sets: Set<string>[] = [];
  const pick = (pred: (n: ResolvedNode) => boolean) => new Set(nodes.filter(pred).map((n) => n.name));
  if (f.node_names?.length) {
    const names = new Set(f.node_names);
    sets.push(pick((n) => names.has(n.name)));
  }
  if (f.node_tags?.length) {
    const tags = f.node_tags;
    sets.push(pick((n) => tags.some((t) => n.tags.includes(t))));
  }
  if (f.rack_names?.length) {
    const racks = new Set(f.rack_names);
    sets.push(pick((n) => n.rack !== null && racks.has(n.rack)));
  }
  if (f.node_labels && Object.keys(f.node_labels).length > 0) {
    const pairs = Object.entries(f.node_labels);
    sets.push(pick((n) => pairs.every(([k, v]) => n.labels[k] === String(v))));
  }
  if (f.rack_labels && Object.keys(f.rack_labels).length > 0) sets.push(new Set(universe));
  return combine(f.filter_type, sets);
}

function combine(type: SetType, sets: Set<string>[]): Set<string> {
  if (sets.length === 0) return new Set();
  if (type === 'union') return new Set(sets.flatMap((s) => [...s]));
  const [first, ...rest] = sets as [Set<string>, ...Set<string>[]];
  return new Set([...first].filter((n) => rest.every((s) => s.has(n))));
}

/** Boot actions targeting each node (upstream `compute_bootaction_targets`), node name → action names. */
export function bootactionTargets(design: SiteDesign): Map<string, string[]> {
  const out = new Map<string, string[]>(nodeNames(design).map((n) => [n, []]));
  for (const ba of uniqueDocuments(design, 'BootAction')) {
    for (const n of applyNodeFilter(design, ba.data.node_filter ?? null)) out.get(n)?.push(ba.name);
  }
  return out;
}
