/**
 * Partition and logical-volume sizes (upstream-apis.md §1.7): an optional leading `>` ("at
 * least this much, and grow into the remaining space"), an integer, then a unit — decimal
 * `m|M|mb|MB` (10^6), `g|G|gb|GB` (10^9), `t|T|tb|TB` (10^12), binary `mi|Mi|mib|MiB` (2^20),
 * `gi|Gi|gib|GiB` (2^30), `ti|Ti|tib|TiB` (2^40), or `%` of the device / volume group.
 * Exactly those spellings: `Mb` or `10 g` are not sizes. The unit is required.
 */
export type Size = { grow: boolean; bytes: number; percent?: undefined } | { grow: boolean; percent: number; bytes?: undefined };

const UNITS: Record<string, number> = {};
for (const [spellings, factor] of [
  [['m', 'M', 'mb', 'MB'], 10 ** 6],
  [['g', 'G', 'gb', 'GB'], 10 ** 9],
  [['t', 'T', 'tb', 'TB'], 10 ** 12],
  [['mi', 'Mi', 'mib', 'MiB'], 2 ** 20],
  [['gi', 'Gi', 'gib', 'GiB'], 2 ** 30],
  [['ti', 'Ti', 'tib', 'TiB'], 2 ** 40],
] as const) {
  for (const s of spellings) UNITS[s] = factor;
}

const SIZE = /^(>?)(\d+)([A-Za-z]+|%)$/;

/**
 * Parse a size string; `undefined` when it is not one (or is too large to count in bytes).
 *
 * @example
 * parseSize('>100g') // { grow: true, bytes: 100_000_000_000 }
 * parseSize('99%')   // { grow: false, percent: 99 }
 */
export function parseSize(text: string): Size | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  const grow = m[1] === '>';
  const n = Number(m[2]);
  const unit = m[3] as string;
  if (unit === '%') return n <= 100 ? { grow, percent: n } : undefined;
  const factor = UNITS[unit];
  if (factor === undefined) return undefined;
  const bytes = n * factor;
  return Number.isSafeInteger(bytes) ? { grow, bytes } : undefined;
}
