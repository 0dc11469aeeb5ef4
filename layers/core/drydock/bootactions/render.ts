import { CORE_SCHEMA, load as loadYaml } from 'js-yaml';
import type { TemplateContext } from './context.ts';
import { InvalidAssetError, InvalidAssetLocationError, InvalidPackageListFormatError } from './errors.ts';
import { executePipeline, toBytes } from './pipeline.ts';

/**
 * Boot-action assets (upstream-apis.md §1.6.5) and their rendering into bytes.
 *
 * `unit` and `file` assets become files in the node's tarballs; `pkg_list` assets become a
 * package map that the deploy merges into the node's cloud-init `packages:` (§1.6.1 step 3) —
 * they never reach a tarball (§1.6.3).
 *
 * Where the data comes from: `location` (if set) goes through `location_pipeline` (only
 * `template`) and is fetched by the caller's `fetchLocation`; otherwise `data` is UTF-8 encoded.
 * The bytes then go through `data_pipeline`; a final string is UTF-8 encoded.
 */

export const ASSET_TYPES = ['unit', 'file', 'pkg_list'] as const;
export type AssetType = (typeof ASSET_TYPES)[number];

/** Default mode of a tarball member when the asset has no `permissions` (upstream: 0600). */
export const DEFAULT_MODE = 0o600;

const PERMISSIONS_RE = /^[0-7]{3}$/;

/**
 * How a fetched package list is read: YAML 1.2's core schema (so `17.03` is a number, which the
 * map refuses: quote it), duplicate keys refused, aliases bounded. With js-yaml, not the `yaml`
 * package the design parser uses: rendering runs in the Drydock task function, which would not
 * fit its 300 KiB with `yaml` (112 KiB) beside the template engine (issue 12); js-yaml's reader
 * is 45 KiB. Both read a flat map of strings the same way.
 */
const PACKAGE_LIST_YAML = { schema: CORE_SCHEMA, maxAliases: 100 };

/**
 * One asset of a BootAction document's `data.assets`, as `../design/model.ts` validates it
 * (`BootActionAsset`): there `permissions` must be three octal digits, `path` absolute, and the
 * pipelines may name only known segments. Rendering checks again what it relies on, so an
 * unvalidated asset fails with a BootActionAssetError rather than something obscure.
 */
export interface BootActionAsset {
  type: AssetType;
  path?: string;
  /** Three octal digits, e.g. `"644"`; 0600 when absent. */
  permissions?: string;
  /** A string, or for `pkg_list` a map package → version or null. */
  data?: string | Readonly<Record<string, string | null>>;
  location?: string;
  location_pipeline?: readonly string[];
  data_pipeline?: readonly string[];
}

/** A `unit` or `file` asset rendered: the tarball member it becomes. */
export interface RenderedFile {
  type: 'unit' | 'file';
  path: string;
  mode: number;
  data: Uint8Array;
}

/** A `pkg_list` asset rendered: package name → version, or null for any version. */
export interface RenderedPackageList {
  type: 'pkg_list';
  packages: Record<string, string | null>;
}

export type RenderedAsset = RenderedFile | RenderedPackageList;

export interface RenderOptions {
  /**
   * Fetches a rendered `location` (schemes `http`, `deckhand+http`, `promenade+http` upstream).
   * Rendering an asset with a location without it is an InvalidAssetLocationError.
   */
  fetchLocation?: (url: string) => Promise<Uint8Array>;
}

/**
 * The mode of an asset's tarball member: `permissions` read as octal, 0600 when absent.
 * NOTE: like upstream (`a.permissions if a.permissions else 0o600`), "000" also means 0600.
 */
export function assetMode(permissions: string | undefined): number {
  if (permissions === undefined) return DEFAULT_MODE;
  if (!PERMISSIONS_RE.test(permissions)) throw new InvalidAssetError(`Invalid permissions ${JSON.stringify(permissions)}: expected 3 octal digits`);
  return Number.parseInt(permissions, 8) || DEFAULT_MODE;
}

/** Checks a package map: string keys, string-or-null values (upstream's InvalidPackageListFormat). */
export function parsePackageMap(value: unknown): Record<string, string | null> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidPackageListFormatError('Package data should have a top-level mapping/object.');
  }
  const out: Record<string, string | null> = {};
  for (const [name, version] of Object.entries(value)) {
    if (version !== null && version !== undefined && typeof version !== 'string') {
      throw new InvalidPackageListFormatError(`Keys and values must be strings: version of ${name} is ${typeof version} (quote it)`);
    }
    out[name] = version ?? null;
  }
  return out;
}

/** The URL without query or credentials, for error messages (it may carry templated secrets). */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

async function fetchAsset(asset: BootActionAsset, context: TemplateContext, options: RenderOptions): Promise<Uint8Array> {
  const rendered = executePipeline(asset.location as string, asset.location_pipeline, context, ['template']);
  const url = typeof rendered === 'string' ? rendered : new TextDecoder().decode(rendered);
  if (!options.fetchLocation) throw new InvalidAssetLocationError(`Unable to resolve asset reference ${redactUrl(url)}: no location fetcher`);
  try {
    return await options.fetchLocation(url);
  } catch (err) {
    throw new InvalidAssetLocationError(`Unable to resolve asset reference ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

/**
 * Renders one asset for one node and boot action.
 *
 * @example
 * await renderAsset({ type: 'file', path: '/etc/motd', data: 'Hi {{ node.hostname }}', data_pipeline: ['utf8_decode', 'template'] }, ctx);
 * // { type: 'file', path: '/etc/motd', mode: 0o600, data: <bytes of "Hi node01"> }
 */
export async function renderAsset(asset: BootActionAsset, context: TemplateContext, options: RenderOptions = {}): Promise<RenderedAsset> {
  if (asset.type === 'pkg_list') {
    if (asset.location === undefined) return { type: 'pkg_list', packages: parsePackageMap(asset.data) };
    // Upstream parses the fetched body as YAML (JSON is YAML) and runs no data_pipeline on it.
    const body = await fetchAsset(asset, context, options);
    let parsed: unknown;
    try {
      parsed = loadYaml(new TextDecoder('utf-8', { fatal: true }).decode(body), PACKAGE_LIST_YAML);
    } catch (err) {
      throw new InvalidPackageListFormatError(`Invalid YAML in package list: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return { type: 'pkg_list', packages: parsePackageMap(parsed) };
  }
  if (asset.path === undefined || !asset.path.startsWith('/')) throw new InvalidAssetError(`A ${asset.type} asset needs an absolute path`);
  const mode = assetMode(asset.permissions);
  let source: Uint8Array;
  if (asset.location !== undefined) source = await fetchAsset(asset, context, options);
  else if (typeof asset.data === 'string') source = new TextEncoder().encode(asset.data);
  else throw new InvalidAssetError(`Asset ${asset.path} has neither string data nor a location`);
  const data = toBytes(executePipeline(source, asset.data_pipeline, context));
  return { type: asset.type, path: asset.path, mode, data };
}

/**
 * Renders the assets of one boot action (in order), optionally only those of one type, as
 * upstream's `render_assets(type_filter=…)` does.
 */
export async function renderAssets(
  assets: readonly BootActionAsset[],
  context: TemplateContext,
  options: RenderOptions & { only?: AssetType } = {},
): Promise<RenderedAsset[]> {
  const chosen = options.only === undefined ? assets : assets.filter((a) => a.type === options.only);
  return Promise.all(chosen.map((a) => renderAsset(a, context, options)));
}

/** All package maps of a node merged in order; a later boot action's version wins (dict.update). */
export function mergePackageLists(rendered: readonly RenderedAsset[]): Record<string, string | null> {
  const merged: Record<string, string | null> = {};
  for (const r of rendered) if (r.type === 'pkg_list') Object.assign(merged, r.packages);
  return merged;
}

/**
 * A merged package map as cloud-init `#cloud-config` `packages:` entries: `name`, or
 * `[name, version]` when a version is given.
 */
export function cloudConfigPackages(packages: Readonly<Record<string, string | null>>): (string | [string, string])[] {
  return Object.entries(packages).map(([name, version]) => (version ? [name, version] : name));
}
