/**
 * Drydock boot actions, pure core: asset rendering (pipelines, Jinja2-compatible templates),
 * bootdata tarballs, action ids (ULID) and node keys. No routes, storage or network here; a
 * `location` is fetched through the caller's `fetchLocation`.
 */
export * from './context.ts';
export * from './errors.ts';
export * from './keys.ts';
export * from './pipeline.ts';
export * from './render.ts';
export * from './tarball.ts';
export { jinjaUrlencode, pythonStr, renderTemplate } from './template.ts';
export * from './ulid.ts';
