import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';

/** A tiny HTTP client for integration tests: talks to the local stack like any client would. */
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

let target: { url: string; token: string } | undefined;
/**
 * Points this test file's calls at another stack (one it started itself, e.g. with a test
 * clock) instead of the shared one. Each test file runs in its own module scope.
 */
export function useStack(url: string, token: string): void {
  target = { url, token };
}

export const apiUrl = (): string => target?.url ?? inject('apiUrl');
export const adminToken = (): string => target?.token ?? inject('adminToken');

export async function call<T = any>(
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string>; redirect?: 'follow' | 'manual' | 'error' } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { Accept: 'application/json', ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? adminToken() : opts.token;
  if (token) headers['X-Auth-Token'] = token;
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(`${apiUrl()}${path}`, { method, headers, body, ...(opts.redirect ? { redirect: opts.redirect } : {}) });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

/** A fresh token for a new project (or the given one) with one role. */
export async function tokenFor(role: 'admin' | 'member' | 'reader' | 'agent', project = `p-${randomUUID().slice(0, 8)}`) {
  const res = await call('POST', '/v1.1/admin/tokens', { body: { project_id: project, role } });
  if (res.status !== 202) throw new Error(`token create failed: ${res.status} ${res.text}`);
  return { token: res.body.token.token as string, project, id: res.body.token.id as string };
}

export const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;
