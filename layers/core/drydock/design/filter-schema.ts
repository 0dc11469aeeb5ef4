import * as z from '../../util/zod.ts';

/**
 * The node filter (upstream-apis.md §1.5), as `POST /tasks`, `POST /nodefilter` and BootAction
 * documents carry it. Strict like upstream's BootAction JSON schema: an unknown key (say
 * `node_name`) is an error rather than a criterion silently ignored.
 */
export const SET_TYPES = ['intersection', 'union'] as const;
export type SetType = (typeof SET_TYPES)[number];

/**
 * Label values: owner_data values are strings, but a YAML or JSON author may write `rank: 1`;
 * scalars are compared as strings (upstream compares with Python `==`, where `1 != "1"`).
 */
const labelMap = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

export const NodeFilter = z.strictObject({
  filter_type: z.enum(SET_TYPES),
  node_names: z.optional(z.array(z.string())),
  node_tags: z.optional(z.array(z.string())),
  node_labels: z.optional(labelMap),
  rack_names: z.optional(z.array(z.string())),
  rack_labels: z.optional(labelMap),
});
export type NodeFilter = z.infer<typeof NodeFilter>;

export const NodeFilterSet = z.strictObject({
  filter_set_type: z.enum(SET_TYPES),
  filter_set: z.array(NodeFilter),
});
export type NodeFilterSet = z.infer<typeof NodeFilterSet>;
