/**
 * The one error hierarchy. Every failure a client can cause is a `DomainError` with an HTTP
 * status and a symbolic name; `layers/http/errors.ts` renders it in each surface's own body
 * format. Anything that is not a DomainError is an internal error and is rendered as a bare
 * 500 without details (see `renderError`).
 */
export abstract class DomainError extends Error {
  abstract readonly statusCode: number;
  /**
   * Machine-readable name, e.g. `NOT_FOUND`; upstream clients show it verbatim. A number only
   * where upstream uses one (Sahara's limit/sort errors carry `error_name: 400`).
   */
  abstract readonly errorName: string | number;
  /** Extra response headers (e.g. `Retry-After`). */
  headers: Record<string, string> = {};
  /**
   * The class's own name, written out in every class (`override readonly name: string = '…'`),
   * never taken from the constructor (`new.target.name`): the Lambda bundles are minified, which
   * renames classes, and Lambda reports a thrown error's `name` as its `errorType`, which the
   * workflows' Retry and Catch match (`ConcurrentModificationError`, infra/workflows/steps.ts).
   * test/infra/bundle.test.ts holds every error class of the Lambda code to this.
   */
  abstract override readonly name: string;
}

/** 400: the request is malformed or breaks a validation rule. */
export class ValidationError extends DomainError {
  override readonly name: string = 'ValidationError';
  readonly statusCode = 400;
  constructor(
    message: string,
    readonly errorName: string | number = 'VALIDATION_ERROR',
  ) {
    super(message);
  }
}

/** 401: no token, an unknown or expired token, or a token for another project. */
export class UnauthorizedError extends DomainError {
  override readonly name: string = 'UnauthorizedError';
  readonly statusCode = 401;
  readonly errorName = 'UNAUTHORIZED';
}

/** 403: authenticated but not allowed. */
export class ForbiddenError extends DomainError {
  override readonly name: string = 'ForbiddenError';
  readonly statusCode = 403;
  constructor(
    message: string,
    readonly errorName: string = 'FORBIDDEN',
  ) {
    super(message);
  }
}

/** 404: the object does not exist or is not visible to the caller. */
export class NotFoundError extends DomainError {
  override readonly name: string = 'NotFoundError';
  readonly statusCode = 404;
  readonly errorName = 'NOT_FOUND';
}

/** 405: the path exists but not with this method. */
export class MethodNotAllowedError extends DomainError {
  override readonly name: string = 'MethodNotAllowedError';
  readonly statusCode = 405;
  readonly errorName = 'METHOD_NOT_ALLOWED';
  constructor(
    message: string,
    readonly allowed: string[],
  ) {
    super(message);
    this.headers = { Allow: allowed.join(', ') };
  }
}

/** 406: the client asked for a representation or API version we do not serve. */
export class NotAcceptableError extends DomainError {
  override readonly name: string = 'NotAcceptableError';
  readonly statusCode = 406;
  readonly errorName = 'NOT_ACCEPTABLE';
}

/** 409: the request conflicts with the current state (status, allocation, uniqueness). */
export class ConflictError extends DomainError {
  override readonly name: string = 'ConflictError';
  readonly statusCode = 409;
  constructor(
    message: string,
    readonly errorName: string = 'CONFLICT',
  ) {
    super(message);
  }
}

/**
 * 409 `NOT_ENOUGH_HOSTS_AVAILABLE`: upstream Blazar answers 500 here (the exception has no
 * code); a client mistake or a busy calendar is not a server fault (DESIGN.md §10).
 */
export class NotEnoughHostsError extends ConflictError {
  override readonly name: string = 'NotEnoughHostsError';
  constructor(message = 'Not enough hosts available') {
    super(message, 'NOT_ENOUGH_HOSTS_AVAILABLE');
  }
}

/** 413: the request body is larger than we accept. */
export class PayloadTooLargeError extends DomainError {
  override readonly name: string = 'PayloadTooLargeError';
  readonly statusCode = 413;
  readonly errorName = 'REQUEST_TOO_LARGE';
}

/** 415: a body that is not JSON where JSON is required. */
export class UnsupportedMediaTypeError extends DomainError {
  override readonly name: string = 'UnsupportedMediaTypeError';
  readonly statusCode = 415;
  readonly errorName = 'UNSUPPORTED_MEDIA_TYPE';
}

/** 422: an Idempotency-Key reused with a different request. */
export class IdempotencyMismatchError extends DomainError {
  override readonly name: string = 'IdempotencyMismatchError';
  readonly statusCode = 422;
  readonly errorName = 'IDEMPOTENCY_KEY_MISMATCH';
}

/** 503: a dependency is temporarily unavailable; safe to retry. */
export class ServiceUnavailableError extends DomainError {
  override readonly name: string = 'ServiceUnavailableError';
  readonly statusCode = 503;
  readonly errorName = 'SERVICE_UNAVAILABLE';
}

/** 502: a BMC (through the agent) answered with an error; the message says what it said. */
export class BmcOperationError extends DomainError {
  override readonly name: string = 'BmcOperationError';
  readonly statusCode = 502;
  readonly errorName = 'BMC_ERROR';
}

/**
 * 504: the agent did not finish a synchronous call in time. Not 503, which clients retry: the
 * job is still queued and a retry would run it twice.
 */
export class AgentTimeoutError extends DomainError {
  override readonly name: string = 'AgentTimeoutError';
  readonly statusCode = 504;
  readonly errorName = 'AGENT_TIMEOUT';
}

/**
 * Raised by repositories when an optimistic-concurrency write lost a race (a version or status
 * condition failed). Use-cases either retry or turn it into a ConflictError; it is still a 409
 * if it escapes.
 */
export class ConcurrentModificationError extends ConflictError {
  override readonly name: string = 'ConcurrentModificationError';
  constructor(message = 'The object was modified concurrently, please retry') {
    super(message, 'CONCURRENT_MODIFICATION');
  }
}

/**
 * A lease event prepared ahead of its time (engine.ts `prepareEvent`) could not be written as
 * prepared: the lease or a node changed since, or the event is not yet due by this clock. Thrown
 * by the workflow's Commit step, whose Catch sends the execution back to Begin to read again and
 * run the event as a due one; never an answer to a request.
 */
export class PreparedPlanStaleError extends ConflictError {
  override readonly name: string = 'PreparedPlanStaleError';
  constructor(message: string) {
    super(message, 'PREPARED_PLAN_STALE');
  }
}
