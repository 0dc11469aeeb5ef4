import { DomainError } from '#core/errors.ts';

/**
 * Renders any thrown value in one surface's error format (DESIGN.md §4). This is the only place
 * errors become HTTP. Non-domain errors are internal: the client gets a bare 500 and the
 * details go to the log with the request id.
 */
export type ErrorStyle = 'blazar' | 'sahara' | 'ironic' | 'drydock' | 'falcon' | 'commissaire' | 'keystone';

export interface RenderedError {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

const PHRASES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function renderError(style: ErrorStyle, err: unknown): RenderedError {
  const domain = err instanceof DomainError ? err : undefined;
  if (style === 'commissaire') return renderCommissaire(domain);
  const statusCode = domain?.statusCode ?? 500;
  const message = domain?.message ?? 'Internal Server Error';
  const name = domain?.errorName ?? 'INTERNAL_SERVER_ERROR';
  const headers = { 'Content-Type': 'application/json', ...(domain?.headers ?? {}) };

  let body: unknown;
  switch (style) {
    case 'ironic':
      // WSME double encoding: error_message is itself a JSON document.
      body = {
        error_message: JSON.stringify({
          faultcode: statusCode < 500 ? 'Client' : 'Server',
          faultstring: message,
          debuginfo: null,
        }),
      };
      break;
    case 'drydock':
      body = { type: 'error', message, retry: statusCode === 503, code: `${statusCode} ${PHRASES[statusCode] ?? ''}`.trim() };
      break;
    case 'keystone':
      // Keystone v3 (keystone/exception.py): keystoneauth shows `message` to the user.
      body = { error: { code: statusCode, title: PHRASES[statusCode] ?? 'Error', message } };
      break;
    case 'falcon':
      // Drydock's boot-action resources raise falcon's own HTTP errors (upstream-apis.md §1.2).
      body = { title: `${statusCode} ${PHRASES[statusCode] ?? ''}`.trim(), description: message };
      break;
    default:
      body = { error_code: statusCode, error_message: message, error_name: name };
  }
  return { statusCode, headers, body: JSON.stringify(body) };
}

/**
 * Commissaire (upstream-apis.md §2.1): the status line and its reason phrase as a `text/html`
 * body, nothing else. It never answers 401: missing or invalid credentials are 403 `Forbidden`.
 */
function renderCommissaire(domain: DomainError | undefined): RenderedError {
  const statusCode = domain ? (domain.statusCode === 401 ? 403 : domain.statusCode) : 500;
  const headers = { ...(domain?.headers ?? {}), 'Content-Type': 'text/html' };
  return { statusCode, headers, body: PHRASES[statusCode] ?? 'Error' };
}
