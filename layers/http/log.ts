/** The structured logger lives in core (every layer may log); re-exported for the HTTP layer. */
export { log, redact } from '#core/util/log.ts';
