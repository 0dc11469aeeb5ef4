import { describe, expect, it } from 'vitest';
import { pageLinks, pageOf, parseListWindow } from '../../layers/core/util/list-window.ts';

/** The paging rules of the upstream lists that have none (issue 16): layers/core/util/list-window.ts. */
describe('parseListWindow', () => {
  it('answers the maximum when no limit is sent, and lowers a larger limit to it', () => {
    expect(parseListWindow({}, 500)).toEqual({ limit: 500, paging: false });
    expect(parseListWindow({ limit: '20' }, 500)).toEqual({ limit: 20, paging: true });
    expect(parseListWindow({ limit: '9999' }, 500)).toEqual({ limit: 500, paging: true });
    expect(parseListWindow({ marker: 'x' }, 500)).toEqual({ limit: 500, marker: 'x', paging: true });
    // An empty marker is no marker; other parameters are ignored, as upstream ignores them.
    expect(parseListWindow({ marker: '', status: 'complete' }, 500)).toEqual({ limit: 500, paging: false });
  });

  it('refuses a limit that is not a positive integer', () => {
    for (const limit of ['0', '-1', '1.5', 'ten', '']) expect(() => parseListWindow({ limit }, 500), limit).toThrow("'limit' must be a positive integer");
  });
});

describe('pageOf and pageLinks', () => {
  const id = (x: string) => x;
  it('a window read one item long says that another page follows, and names its marker', () => {
    const page = pageOf(['a', 'b', 'c'], 2, id);
    expect(page).toEqual({ items: ['a', 'b'], next: 'b', limit: 2 });
    expect(pageLinks('/api/v1.0/tasks', page)).toEqual({ Link: '</api/v1.0/tasks?limit=2&marker=b>; rel="next"' });
  });

  it('a short window is the end of the list: no link', () => {
    const page = pageOf(['a', 'b'], 2, id);
    expect(page).toEqual({ items: ['a', 'b'], limit: 2 });
    expect(pageLinks('/api/v0/hosts', page)).toBeUndefined();
  });

  it('a newest-first window drops its oldest extra item and points at the start of the list', () => {
    const page = pageOf(['a', 'b', 'c'], 2, id, true);
    expect(page).toEqual({ items: ['b', 'c'], truncated: true, limit: 2 });
    expect(pageLinks('/api/v1.0/tasks', page)).toEqual({ Link: '</api/v1.0/tasks?limit=2>; rel="first"' });
  });

  it('escapes a marker for the query string (IPv6 addresses)', () => {
    expect(pageLinks('/api/v0/hosts', pageOf(['fd00::1', 'fd00::2'], 1, id))).toEqual({ Link: '</api/v0/hosts?limit=1&marker=fd00%3A%3A1>; rel="next"' });
  });
});
