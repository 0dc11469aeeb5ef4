import * as z from '../util/zod.ts';
import { NotEnoughHostsError, ValidationError } from '../errors.ts';
import { allocatable, outOfService, overlapping, type Node } from '../inventory/node.ts';
import { indexableTerm, matches, parseRequirements, referencedKeys } from './filters.ts';
import type { AllocationRequest, ResourcePlugin } from './plugin.ts';
import { checkConfigDrive, type ConfigDrive, imageRefOf } from '../ironic/deploy.ts';
import { isSealed, type Sealed, sealedShapeAt } from '../secrets.ts';
import { byteLength } from '../util/bounds.ts';
import { hostAfterDeleteActive } from './host-lifecycle.ts';

/**
 * `physical:host`: whole bare-metal nodes. Parameters and checks follow upstream-apis.md §4.4,
 * allocation follows §4.9: matching reservable hosts; never-allocated hosts first, then hosts
 * that are free in the window padded by the cleaning gap; up to `max`, at least `min`. A node
 * in maintenance or cleaning (or failed: `allocatable`) is never a new candidate.
 */
const intLike = (name: string) =>
  z.pipe(z.union([z.number(), z.string()], { error: `Missing parameter ${name}` }), z.transform((v, ctx) => {
    const n = typeof v === 'number' ? v : /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n)) {
      z.transformIssue(ctx, `Malformed parameter ${name}`);
      return z.NEVER;
    }
    return n;
  }));

const filterString = (name: string) =>
  z.union([z.string(), z.array(z.unknown())], { error: `Missing parameter ${name}` });

const HostParams = z.strictObject({
  min: intLike('min'),
  max: intLike('max'),
  hypervisor_properties: filterString('hypervisor_properties'),
  resource_properties: filterString('resource_properties'),
  before_end: z.optional(z.enum(['', 'default', 'snapshot'], { error: 'Malformed parameter before_end' })),
  /** Ours: the image the lease's nodes are deployed with at its start (a catalog name or a URL). */
  'slipway:image': z.optional(z.string({ error: 'Malformed parameter slipway:image' }).check(z.maxLength(2048, 'Malformed parameter slipway:image'))),
  /** Ours: the sha256 of a URL image. */
  'slipway:image_checksum': z.optional(z.string({ error: 'Malformed parameter slipway:image_checksum' }).check(z.maxLength(256, 'Malformed parameter slipway:image_checksum'))),
  /**
   * Ours: the config drive the start deploy writes (Ironic's JSON form, or that JSON as a
   * string for command lines); stored sealed, shown masked. Checked in `check`.
   */
  'slipway:config_drive': z.optional(z.unknown()),
});

/** A lease's config drive is stored in the lease item (DynamoDB: 400 KB in all), so smaller than Ironic's. */
const MAX_LEASE_CONFIGDRIVE_BYTES = 16 * 1024;
const CONFIG_DRIVE = 'slipway:config_drive';
/** How a stored config drive is shown (Ironic masks `configdrive` in instance_info the same way). */
const MASK = '******';

function firstIssue(err: z.core.$ZodError): string {
  const issue = err.issues[0];
  if (issue?.code === 'unrecognized_keys') return `Unknown physical:host reservation parameter(s): ${issue.keys.join(', ')}`;
  return issue?.message ?? 'Invalid reservation';
}

function check(params: z.infer<typeof HostParams>): Record<string, unknown> {
  if (params.min < 1 || params.max < 1) {
    throw new ValidationError('Malformed parameter min and max (must be greater than or equal to 1)');
  }
  if (params.max < params.min) {
    throw new ValidationError(`Invalid values for min/max of hosts. Max must be equal to or larger than min (min=${params.min}, max=${params.max})`, 'INVALID_RANGE');
  }
  const norm = (v: string | unknown[]) => (typeof v === 'string' ? v : JSON.stringify(v));
  const out = {
    min: params.min,
    max: params.max,
    hypervisor_properties: norm(params.hypervisor_properties),
    resource_properties: norm(params.resource_properties),
    before_end: params.before_end === undefined || params.before_end === '' ? 'default' : params.before_end,
  };
  parseRequirements(out.hypervisor_properties, 'hypervisor_properties');
  parseRequirements(out.resource_properties, 'resource_properties');
  const image = params['slipway:image'];
  const drive = configDriveOf(params[CONFIG_DRIVE]);
  if (image === undefined || image === '') {
    if (drive !== undefined) throw new ValidationError('Malformed parameter slipway:config_drive: it is written by the deploy of slipway:image, and no slipway:image is given');
    return out;
  }
  // Checked as Ironic checks instance_info, so that a lease never starts with an image it cannot deploy.
  const checksum = params['slipway:image_checksum'];
  imageRefOf({ image_source: image, ...(checksum ? { image_checksum: checksum } : {}) }, 'of this reservation');
  return { ...out, 'slipway:image': image, ...(checksum ? { 'slipway:image_checksum': checksum } : {}), ...(drive !== undefined ? { [CONFIG_DRIVE]: drive } : {}) };
}

/**
 * The reservation's config drive: absent (undefined, null or '' removes it), the stored sealed
 * form (kept as it is), or a new one checked as Ironic checks `--config-drive`, to be sealed by
 * `sealParams` before it is stored.
 */
function configDriveOf(raw: unknown): ConfigDrive | Sealed | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (isSealed(raw)) return raw;
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw) as unknown;
    } catch {
      throw new ValidationError('Malformed parameter slipway:config_drive: give it as JSON, {"meta_data": {...}, "user_data": "..."}');
    }
  }
  if (typeof value !== 'object' || value === null) throw new ValidationError('Malformed parameter slipway:config_drive: give it as JSON, {"meta_data": {...}, "user_data": "..."}');
  if (byteLength(JSON.stringify(value)) > MAX_LEASE_CONFIGDRIVE_BYTES) {
    throw new ValidationError(`Malformed parameter slipway:config_drive: larger than ${MAX_LEASE_CONFIGDRIVE_BYTES} bytes`);
  }
  try {
    return checkConfigDrive(value);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(`Malformed parameter slipway:config_drive: ${err.message.replace(/^Invalid configdrive: /, '')}`);
    throw err;
  }
}

/** Only the API seals: a sealed-looking value from a client is refused, never stored as if sealed. */
function refuseSealedShape(raw: Record<string, unknown>): void {
  const at = sealedShapeAt(raw[CONFIG_DRIVE]);
  if (at !== undefined) throw new ValidationError('Malformed parameter slipway:config_drive: a $sealed key is not allowed');
}

/** How many nodes new to the reservation a lease could take now that fail only `test`. */
const candidatesBut = (nodes: readonly Node[], test: (n: Node) => boolean) => nodes.filter((n) => allocatable(n) && test(n)).length;

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

export const hostPlugin: ResourcePlugin = {
  resourceType: 'physical:host',

  validateCreate(raw) {
    const { resource_type: _type, ...params } = raw;
    refuseSealedShape(params);
    const r = HostParams.safeParse(params);
    if (!r.success) throw new ValidationError(firstIssue(r.error));
    return check(r.data);
  },

  validateUpdate(current, raw) {
    refuseSealedShape(raw);
    const r = HostParams.safeParse({ ...current, ...raw });
    if (!r.success) throw new ValidationError(firstIssue(r.error));
    return check(r.data);
  },

  wants(req) {
    const { params, start, end, config } = req;
    const min = params.min as number;
    const max = Math.min(params.max as number, req.limit === undefined ? Infinity : Math.max(min, req.current.length, req.limit));
    const hyp = parseRequirements(params.hypervisor_properties, 'hypervisor_properties');
    const res = parseRequirements(params.resource_properties, 'resource_properties');
    const own = new Set([req.reservationId]);
    const skip = new Set([...req.current, ...(req.replace ?? [])]);
    const capability = indexableTerm(res) ?? indexableTerm(hyp);
    return {
      // As many as `allocate` could add (an update may lose every host it holds to new dates).
      room: max,
      fits: (n: Node) =>
        !skip.has(n.id) && n.host_id !== undefined && n.reservable && allocatable(n) && matches(hyp, n) && matches(res, n) &&
        overlapping(n, start, end, config.cleaningMinutes, own).length === 0,
      ...(capability ? { capability } : {}),
    };
  },

  allocate(req: AllocationRequest): string[] {
    const { params, start, end, config } = req;
    const min = params.min as number;
    // Greedy up to max, or up to the project's remaining headroom when that is smaller.
    // (Never below min or below what the reservation holds: the limit only trims what it would add.)
    const max = Math.min(params.max as number, req.limit === undefined ? Infinity : Math.max(min, req.current.length, req.limit));
    const hyp = parseRequirements(params.hypervisor_properties, 'hypervisor_properties');
    const res = parseRequirements(params.resource_properties, 'resource_properties');
    const own = new Set([req.reservationId]);
    const eligible = (n: Node) => n.host_id !== undefined && n.reservable && matches(hyp, n) && matches(res, n);
    // A node new to the reservation must also be one a lease may take now (not in maintenance,
    // not cleaning or failed); one it holds already is kept while it still fits.
    const candidate = (n: Node) => eligible(n) && allocatable(n);
    const free = (n: Node) => overlapping(n, start, end, config.cleaningMinutes, own).length === 0;
    const byId = new Map(req.nodes.map((n) => [n.id, n]));

    // Keep what the reservation holds where it still fits (and is not being replaced).
    const replace = new Set(req.replace ?? []);
    const kept: string[] = [];
    const lost: string[] = [];
    for (const id of req.current) {
      const n = byId.get(id);
      if (n && !replace.has(id) && eligible(n) && free(n)) kept.push(id);
      else lost.push(id);
    }
    if (req.active && lost.length > 0) {
      throw new NotEnoughHostsError(
        `Not enough hosts available: ${lost.length} host(s) of this active reservation are not available for the new dates or properties, and hosts of a running reservation are never replaced`,
      );
    }
    if (kept.length > max) return kept.slice(0, max);
    // Healing aims at as many hosts as the reservation held (at least min, never more): it needs
    // min, and takes replacements for the rest where there are free ones.
    const goal = replace.size > 0 ? Math.min(max, Math.max(min, req.current.length)) : min;
    if (kept.length >= goal && req.current.length > 0) return kept;

    const taken = new Set(kept);
    const candidates = req.nodes.filter((n) => !taken.has(n.id) && !replace.has(n.id) && candidate(n) && free(n));
    // Equal candidates are taken in random order (upstream's randomize_host_selection), so that
    // parallel requests for one period spread over the free hosts instead of all racing for the
    // first one and retrying.
    const ordered = (xs: Node[]) => shuffle(xs);
    const never = ordered(candidates.filter((n) => Object.keys(n.allocations).length === 0));
    const used = ordered(candidates.filter((n) => Object.keys(n.allocations).length > 0));
    const need = min - kept.length;
    const room = (replace.size > 0 ? goal : max) - kept.length;
    const pool = never.length >= need ? never : [...used, ...never];
    if (pool.length < need) {
      const matching = req.nodes.filter(eligible);
      // Say why the others are not free where it is not another lease holding them in the window.
      const why: string[] = [];
      const gapOnly = config.cleaningMinutes > 0 ? candidatesBut(matching, (n) => !free(n) && overlapping(n, start, end, 0, own).length === 0) : 0;
      if (gapOnly > 0) why.push(`${gapOnly} only inside the ${config.cleaningMinutes}-minute cleaning gap kept before and after another lease on the node (its disks are erased then)`);
      const down = matching.filter((n) => !allocatable(n)).length;
      if (down > 0) why.push(`${down} in maintenance, being cleaned or failed`);
      throw new NotEnoughHostsError(
        `Not enough hosts available: ${need} more needed, ${pool.length} free of ${matching.length} matching host(s) for this period${why.length > 0 ? ` (of the others: ${why.join('; ')})` : ''}`,
      );
    }
    return [...kept, ...pool.slice(0, room).map((n) => n.id)];
  },

  view(r) {
    const p = r.params;
    return {
      min: p.min,
      max: p.max,
      hypervisor_properties: p.hypervisor_properties,
      resource_properties: p.resource_properties,
      before_end: p.before_end,
      ...(p['slipway:image'] ? { 'slipway:image': p['slipway:image'] } : {}),
      ...(p['slipway:image_checksum'] ? { 'slipway:image_checksum': p['slipway:image_checksum'] } : {}),
      // User data may hold secrets: a lessee sees that there is a config drive, never its content.
      ...(p[CONFIG_DRIVE] ? { [CONFIG_DRIVE]: MASK } : {}),
    };
  },

  async sealParams(deps, params) {
    const drive = params[CONFIG_DRIVE];
    if (drive === undefined || isSealed(drive)) return params;
    return { ...params, [CONFIG_DRIVE]: { $sealed: await deps.secrets.seal('config-drive', JSON.stringify(drive)) } };
  },

  referencedProperties(params) {
    // Stored filters were checked when stored; one that no longer parses (stored before the
    // bounds existed) pins nothing rather than making every update of its hosts fail.
    const keys = (raw: unknown, field: string) => {
      try {
        return referencedKeys(parseRequirements(raw, field));
      } catch {
        return [];
      }
    };
    return [...keys(params.hypervisor_properties, 'hypervisor_properties'), ...keys(params.resource_properties, 'resource_properties')];
  },

  async lostResources(deps, res) {
    const lost: string[] = [];
    await Promise.all(
      res.node_ids.map(async (id) => {
        const node = await deps.nodes.get(id);
        if (!node || outOfService(node)) lost.push(id);
      }),
    );
    return lost.sort();
  },

  afterDeleteActive: hostAfterDeleteActive,
};

export const PLUGINS: ReadonlyMap<string, ResourcePlugin> = new Map([[hostPlugin.resourceType, hostPlugin]]);

export function pluginFor(resourceType: string): ResourcePlugin {
  const p = PLUGINS.get(resourceType);
  if (!p) throw new ValidationError(`The ${resourceType} resource type is not supported`, 'UNSUPPORTED_RESOURCE_TYPE');
  return p;
}
