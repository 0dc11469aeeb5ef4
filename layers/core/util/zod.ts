import { config } from 'zod/mini';
import en from 'zod/v4/locales/en.js';

/**
 * The one zod of the Lambda code: `zod/mini`, with English messages. Classic zod (`import * as z
 * from 'zod'`) puts every method on every schema, 85–100 kB in each bundle whatever is used;
 * mini's functions tree-shake to what the schemas use (docs/bundles.md). The
 * messages are the same: both are zod's core with its English locale, which mini leaves out
 * unless configured, as here. Import it as `import * as z from '…/util/zod.ts'` (a namespace:
 * `export { z }` would keep every function of mini in the bundle).
 */
config(en());

export * from 'zod/mini';

import type { core } from 'zod/mini';

/**
 * Reports a problem from inside `z.transform`: classic zod's transform context has `addIssue`,
 * mini's is the bare parse payload, whose issues this appends to (same issue, same message).
 */
export function transformIssue(ctx: core.ParsePayload, message: string, path?: PropertyKey[]): void {
  ctx.issues.push({ code: 'custom', message, input: ctx.value, ...(path ? { path } : {}) });
}
