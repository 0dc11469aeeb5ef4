import { describe, expect, it } from 'vitest';
import {
  ConflictError,
  MethodNotAllowedError,
  NotEnoughHostsError,
  NotFoundError,
  ServiceUnavailableError,
  UnauthorizedError,
  ValidationError,
} from '../../layers/core/errors.ts';
import { type ErrorStyle, renderError } from '../../layers/http/errors.ts';

const STYLES: ErrorStyle[] = ['blazar', 'sahara', 'ironic', 'drydock', 'falcon'];

const parse = (body: string) => JSON.parse(body) as Record<string, unknown>;

describe('renderError: blazar and sahara', () => {
  for (const style of ['blazar', 'sahara'] as const) {
    it(`renders a domain error as {error_code, error_message, error_name} (${style})`, () => {
      const r = renderError(style, new NotFoundError("Object with {'lease_id': 'x'} not found"));
      expect(r.statusCode).toBe(404);
      expect(r.headers['Content-Type']).toBe('application/json');
      expect(parse(r.body)).toEqual({ error_code: 404, error_message: "Object with {'lease_id': 'x'} not found", error_name: 'NOT_FOUND' });
    });

    it(`keeps a numeric error_name as a number (${style})`, () => {
      const r = renderError(style, new ValidationError("'limit' must be positive integer", 400));
      expect(parse(r.body)).toEqual({ error_code: 400, error_message: "'limit' must be positive integer", error_name: 400 });
    });

    it(`renders NotEnoughHosts as 409 NOT_ENOUGH_HOSTS_AVAILABLE, not upstream's 500 (${style})`, () => {
      const r = renderError(style, new NotEnoughHostsError());
      expect(r.statusCode).toBe(409);
      expect(parse(r.body)).toMatchObject({ error_code: 409, error_name: 'NOT_ENOUGH_HOSTS_AVAILABLE' });
    });
  }
});

describe('renderError: ironic', () => {
  it('double-encodes the fault as a JSON string in error_message, faultcode Client for 4xx', () => {
    const r = renderError('ironic', new ConflictError('Node n1 is locked by host c1', 'NODE_LOCKED'));
    expect(r.statusCode).toBe(409);
    const body = parse(r.body);
    expect(Object.keys(body)).toEqual(['error_message']);
    expect(typeof body.error_message).toBe('string');
    expect(JSON.parse(body.error_message as string)).toEqual({ faultcode: 'Client', faultstring: 'Node n1 is locked by host c1', debuginfo: null });
  });

  it('uses faultcode Server for 5xx', () => {
    const r = renderError('ironic', new ServiceUnavailableError('DynamoDB is throttling'));
    expect(r.statusCode).toBe(503);
    expect(JSON.parse(parse(r.body).error_message as string)).toMatchObject({ faultcode: 'Server', faultstring: 'DynamoDB is throttling' });
  });
});

describe('renderError: drydock', () => {
  it('renders {type: "error", message, retry: false} for a client error', () => {
    const r = renderError('drydock', new ValidationError('Invalid task action'));
    expect(r.statusCode).toBe(400);
    expect(parse(r.body)).toMatchObject({ type: 'error', message: 'Invalid task action', retry: false });
  });

  it('marks a 503 as retryable', () => {
    expect(parse(renderError('drydock', new ServiceUnavailableError('busy')).body)).toMatchObject({ type: 'error', retry: true });
  });
});

describe('renderError: falcon (Drydock boot-action routes)', () => {
  it('renders {title: "<status> <phrase>", description} and nothing else', () => {
    const r = renderError('falcon', new NotFoundError('Error locating boot action for node01'));
    expect(r.statusCode).toBe(404);
    expect(r.headers['Content-Type']).toBe('application/json');
    expect(parse(r.body)).toEqual({ title: '404 Not Found', description: 'Error locating boot action for node01' });
    expect(parse(renderError('falcon', new ConflictError('Action X status finalized, not available for update.')).body)).toEqual({
      title: '409 Conflict',
      description: 'Action X status finalized, not available for update.',
    });
  });

  it("keeps a 401's WWW-Authenticate challenge", () => {
    const err = new UnauthorizedError('No X-Bootaction-Key');
    err.headers = { 'WWW-Authenticate': 'Bootaction-Key' };
    const r = renderError('falcon', err);
    expect(r.statusCode).toBe(401);
    expect(r.headers).toMatchObject({ 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bootaction-Key' });
    expect(parse(r.body)).toEqual({ title: '401 Unauthorized', description: 'No X-Bootaction-Key' });
  });
});

describe('renderError: headers', () => {
  it("adds a domain error's own headers (Allow on 405)", () => {
    for (const style of STYLES) {
      const r = renderError(style, new MethodNotAllowedError('Method PATCH is not allowed', ['GET', 'PUT']));
      expect(r.statusCode).toBe(405);
      expect(r.headers).toMatchObject({ 'Content-Type': 'application/json', Allow: 'GET, PUT' });
    }
  });

  it('renders 401 in every style', () => {
    for (const style of STYLES) expect(renderError(style, new UnauthorizedError('Authentication required')).statusCode).toBe(401);
  });
});

describe('renderError: internal errors', () => {
  const secret = 'ECONNREFUSED 10.0.0.7:8000 table=slipway-prod password=hunter2';

  for (const style of STYLES) {
    it(`renders a non-domain Error as a bare 500 without its message or stack (${style})`, () => {
      const err = new TypeError(secret);
      const r = renderError(style, err);
      expect(r.statusCode).toBe(500);
      expect(r.body).not.toContain('ECONNREFUSED');
      expect(r.body).not.toContain('hunter2');
      expect(r.body).not.toContain('TypeError');
      expect(r.body).not.toMatch(/\bat .*\(|\.ts:\d+/);
      expect(Object.values(r.headers).join(' ')).not.toContain('hunter2');
    });
  }

  it('renders a bare 500 body per style', () => {
    expect(parse(renderError('blazar', new Error(secret)).body)).toEqual({
      error_code: 500,
      error_message: 'Internal Server Error',
      error_name: 'INTERNAL_SERVER_ERROR',
    });
    expect(parse(renderError('sahara', new Error(secret)).body)).toEqual({
      error_code: 500,
      error_message: 'Internal Server Error',
      error_name: 'INTERNAL_SERVER_ERROR',
    });
    expect(JSON.parse(parse(renderError('ironic', new Error(secret)).body).error_message as string)).toEqual({
      faultcode: 'Server',
      faultstring: 'Internal Server Error',
      debuginfo: null,
    });
    expect(parse(renderError('drydock', new Error(secret)).body)).toMatchObject({ type: 'error', message: 'Internal Server Error', retry: false });
    expect(parse(renderError('falcon', new Error(secret)).body)).toEqual({ title: '500 Internal Server Error', description: 'Internal Server Error' });
  });

  it('renders thrown non-Error values as a bare 500', () => {
    for (const thrown of ['boom: ' + secret, { message: secret, statusCode: 404 }, null, undefined, 42]) {
      const r = renderError('sahara', thrown);
      expect(r.statusCode).toBe(500);
      expect(r.body).not.toContain('hunter2');
    }
  });

  it('does not trust a statusCode on a foreign error object', () => {
    const fake = Object.assign(new Error(secret), { statusCode: 400, errorName: 'FAKE' });
    const r = renderError('blazar', fake);
    expect(r.statusCode).toBe(500);
    expect(parse(r.body)).toMatchObject({ error_name: 'INTERNAL_SERVER_ERROR' });
  });
});
