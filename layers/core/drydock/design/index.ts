/**
 * The Drydock site design model (issue 5): read Deckhand-envelope YAML into a typed design,
 * validate it, resolve nodes through their host profiles, and evaluate node filters. Pure
 * core code — texts in, objects out; fetching designs and storing them is the caller's.
 *
 * @example
 * const { design, messages } = loadDesign([siteYaml, nodesYaml]);
 * const all = [...messages, ...validateDesign(design)];
 * const status = validationStatus(all); // { status: 'Success' | 'Failure', details: { errorCount, messageList } }
 * const targets = applyNodeFilter(design, task.node_filter);
 * const bmc = resolveNode(design, targets[0]).oob;
 */
export { applyNodeFilter, bootactionTargets, parseNodeFilter } from './filter.ts';
export { NodeFilter, NodeFilterSet, SET_TYPES, type SetType } from './filter-schema.ts';
export { type DocumentReference, type MessageLevel, RULES, type ValidationMessage, validationStatus } from './messages.ts';
export * from './model.ts';
export { loadDesign } from './parse.ts';
export { effectiveData, mergePatch, profileChain, type ResolvedNode, type ResolvedOob, resolveHardwareReference, resolveNode } from './resolve.ts';
export { parseSize, type Size } from './size.ts';
export { projectDesignProblems, type ValidateOptions, validateDesign } from './validate.ts';
