import { describe, expect, it } from 'vitest';
import { DomainError, NotFoundError, ValidationError } from '../../layers/core/errors.ts';
import { type ListOptions, type ListQuery, paginate } from '../../layers/http/pagination.ts';

interface Item {
  id: string;
  name: string;
  status: string;
  size: number;
}

const OPTS: ListOptions<Item> = { sortable: ['id', 'name', 'status', 'size'], filterable: ['name', 'status'] };

/** ids a..g ascending, the worked example of upstream-apis.md §5.3 */
const AG: Item[] = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id, i) => ({ id, name: `n-${id}`, status: i % 2 ? 'ACTIVE' : 'PENDING', size: 10 - i }));

const ids = (xs: readonly { id: string }[]) => xs.map((x) => x.id);

/** Deterministic permutation so that inputs come in a different order on every call (as a Scan would). */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function thrown(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (err) {
    return err as DomainError;
  }
  throw new Error('expected an error');
}

describe('paginate: worked example a..g, limit=3 (upstream-apis.md §5.3)', () => {
  it('serves page 1 as [a,b,c] with next=c and prev=null', () => {
    const p = paginate(AG, { limit: '3' }, OPTS);
    expect(ids(p.items)).toEqual(['a', 'b', 'c']);
    expect(p.markers).toEqual({ prev: null, next: 'c' });
  });

  it('serves marker=c as [d,e,f] with next=f and prev=null (page 1 has no marker)', () => {
    const p = paginate(AG, { limit: '3', marker: 'c' }, OPTS);
    expect(ids(p.items)).toEqual(['d', 'e', 'f']);
    expect(p.markers).toEqual({ prev: null, next: 'f' });
  });

  it('serves marker=f as [g] with next=null and prev=c', () => {
    const p = paginate(AG, { limit: '3', marker: 'f' }, OPTS);
    expect(ids(p.items)).toEqual(['g']);
    expect(p.markers).toEqual({ prev: 'c', next: null });
  });

  it('orders by id regardless of the input order', () => {
    const p = paginate(shuffled(AG, 7), { limit: '3' }, OPTS);
    expect(ids(p.items)).toEqual(['a', 'b', 'c']);
  });
});

describe('paginate: markers presence', () => {
  it('returns everything without a markers key when neither limit nor marker is sent', () => {
    const p = paginate(AG, {}, OPTS);
    expect(ids(p.items)).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    expect(p).not.toHaveProperty('markers');
  });

  it('returns the rest after the marker with null markers when marker is sent without limit', () => {
    const p = paginate(AG, { marker: 'e' }, OPTS);
    expect(ids(p.items)).toEqual(['f', 'g']);
    expect(p.markers).toEqual({ prev: null, next: null });
  });

  it('omits markers for a single short page with limit and no marker', () => {
    const p = paginate(AG, { limit: '10' }, OPTS);
    expect(ids(p.items)).toHaveLength(7);
    expect(p).not.toHaveProperty('markers');
  });

  it('omits markers when limit equals the item count exactly (n > L is false)', () => {
    const p = paginate(AG, { limit: '7' }, OPTS);
    expect(ids(p.items)).toHaveLength(7);
    expect(p).not.toHaveProperty('markers');
  });

  it('includes null markers whenever the request carried a marker, even for a short page', () => {
    const p = paginate(AG, { limit: '10', marker: 'a' }, OPTS);
    expect(ids(p.items)).toEqual(['b', 'c', 'd', 'e', 'f', 'g']);
    expect(p.markers).toEqual({ prev: null, next: null });
  });

  it('returns an empty list with a marker on the last item', () => {
    const p = paginate(AG, { limit: '3', marker: 'g' }, OPTS);
    expect(p.items).toEqual([]);
    expect(p.markers).toEqual({ prev: 'd', next: null });
  });

  it('names the last item as next when a marker page ends exactly at it (upstream quirk)', () => {
    const six = AG.slice(0, 6); // a..f
    const p = paginate(six, { limit: '3', marker: 'c' }, OPTS);
    expect(ids(p.items)).toEqual(['d', 'e', 'f']);
    expect(p.markers).toEqual({ prev: null, next: 'f' });
    const after = paginate(six, { limit: '3', marker: 'f' }, OPTS);
    expect(after.items).toEqual([]);
    expect(after.markers).toEqual({ prev: 'c', next: null });
  });

  it('does not name next on a first page that ends exactly at the last item', () => {
    const p = paginate(AG.slice(0, 3), { limit: '3' }, OPTS);
    expect(p).not.toHaveProperty('markers');
  });

  it('computes prev as the item limit places before the marker', () => {
    expect(paginate(AG, { limit: '2', marker: 'd' }, OPTS).markers).toEqual({ prev: 'b', next: 'f' });
    expect(paginate(AG, { limit: '1', marker: 'a' }, OPTS).markers).toEqual({ prev: null, next: 'b' });
    expect(paginate(AG, { limit: '1', marker: 'b' }, OPTS).markers).toEqual({ prev: 'a', next: 'c' });
  });

  it('lets a client walk every page by passing next as marker', () => {
    const seen: string[] = [];
    let marker: string | undefined;
    for (let guard = 0; guard < 10; guard++) {
      const q: ListQuery = { limit: '2' };
      if (marker !== undefined) q.marker = marker;
      const p = paginate(AG, q, OPTS);
      seen.push(...ids(p.items));
      if (!p.markers?.next) break;
      marker = p.markers.next;
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  });
});

describe('paginate: errors', () => {
  it('answers an unknown marker with 404 NOT_FOUND and the upstream message', () => {
    const err = thrown(() => paginate(AG, { limit: '3', marker: 'zz' }, OPTS));
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.statusCode).toBe(404);
    expect(err.errorName).toBe('NOT_FOUND');
    expect(err.message).toBe("Object with {'id': 'zz'} not found");
  });

  it('answers an unknown marker without limit with 404 too', () => {
    expect(thrown(() => paginate(AG, { marker: 'zz' }, OPTS))).toBeInstanceOf(NotFoundError);
  });

  for (const limit of ['0', '-1', 'x', '1.5', '', '3abc', '1e2']) {
    it(`rejects limit=${JSON.stringify(limit)} with 400, numeric error_name 400 and the upstream message`, () => {
      const err = thrown(() => paginate(AG, { limit }, OPTS));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.statusCode).toBe(400);
      expect(err.errorName).toBe(400);
      expect(err.message).toBe("'limit' must be positive integer");
    });
  }

  it('rejects an unknown sort field with numeric error_name 400', () => {
    const err = thrown(() => paginate(AG, { sort_by: 'color' }, OPTS));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.errorName).toBe(400);
    expect(err.message).toBe('Unknown field for sorting color');
  });

  it('rejects an unknown descending sort field naming the field without the minus', () => {
    const err = thrown(() => paginate(AG, { sort_by: '-color' }, OPTS));
    expect(err.errorName).toBe(400);
    expect(err.message).toBe('Unknown field for sorting color');
  });

  it('rejects a sort field outside the whitelist even if items have it', () => {
    const opts: ListOptions<Item> = { sortable: ['id'], filterable: [] };
    expect(thrown(() => paginate(AG, { sort_by: 'name' }, opts)).message).toBe('Unknown field for sorting name');
  });

  it('rejects unknown query parameters with INVALID_PARAMS_ON_REQUEST, naming them', () => {
    const err = thrown(() => paginate(AG, { limit: '3', colour: 'red', page: '2' }, OPTS));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.statusCode).toBe(400);
    expect(err.errorName).toBe('INVALID_PARAMS_ON_REQUEST');
    expect(err.message).toContain('colour');
    expect(err.message).toContain('page');
  });

  it('rejects a field that is sortable but not filterable used as a filter', () => {
    expect(thrown(() => paginate(AG, { size: '10' }, OPTS)).errorName).toBe('INVALID_PARAMS_ON_REQUEST');
  });
});

describe('paginate: sorting', () => {
  it('sorts by a field ascending', () => {
    const p = paginate(AG, { sort_by: 'size' }, OPTS);
    expect(ids(p.items)).toEqual(['g', 'f', 'e', 'd', 'c', 'b', 'a']);
  });

  it('sorts descending with a - prefix', () => {
    expect(ids(paginate(AG, { sort_by: '-id' }, OPTS).items)).toEqual(['g', 'f', 'e', 'd', 'c', 'b', 'a']);
    expect(ids(paginate(AG, { sort_by: '-size' }, OPTS).items)).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  });

  it('sorts numbers numerically, not as strings', () => {
    const items: Item[] = [
      { id: 'x', name: 'x', status: 's', size: 10 },
      { id: 'y', name: 'y', status: 's', size: 9 },
      { id: 'z', name: 'z', status: 's', size: 100 },
    ];
    expect(ids(paginate(items, { sort_by: 'size' }, OPTS).items)).toEqual(['y', 'x', 'z']);
  });

  it('pages by markers in the sorted order', () => {
    const p1 = paginate(AG, { sort_by: '-id', limit: '3' }, OPTS);
    expect(ids(p1.items)).toEqual(['g', 'f', 'e']);
    expect(p1.markers).toEqual({ prev: null, next: 'e' });
    const p2 = paginate(AG, { sort_by: '-id', limit: '3', marker: 'e' }, OPTS);
    expect(ids(p2.items)).toEqual(['d', 'c', 'b']);
  });

  it('breaks ties on equal sort keys by id', () => {
    const p = paginate(shuffled(AG, 3), { sort_by: 'status' }, OPTS);
    expect(ids(p.items)).toEqual(['b', 'd', 'f', 'a', 'c', 'e', 'g']);
  });

  it('breaks ties by id in descending sorts too, deterministically', () => {
    const a = paginate(shuffled(AG, 1), { sort_by: '-status' }, OPTS);
    const b = paginate(shuffled(AG, 2), { sort_by: '-status' }, OPTS);
    expect(ids(a.items)).toEqual(ids(b.items));
    expect(ids(a.items).slice(0, 4).sort()).toEqual(['a', 'c', 'e', 'g']);
  });

  for (const sort_by of ['status', '-status']) {
    it(`never skips or repeats rows when paging through equal sort keys (sort_by=${sort_by})`, () => {
      // 25 rows sharing 3 status values; every call sees the rows in a different order.
      const rows: Item[] = Array.from({ length: 25 }, (_, i) => ({
        id: `id-${String((i * 7) % 25).padStart(2, '0')}`,
        name: `n${i}`,
        status: ['A', 'B', 'C'][i % 3]!,
        size: 1,
      }));
      for (const limit of ['1', '2', '4', '7']) {
        const seen: string[] = [];
        let marker: string | undefined;
        for (let call = 0; call < 40; call++) {
          const q: ListQuery = { sort_by, limit };
          if (marker !== undefined) q.marker = marker;
          const p = paginate(shuffled(rows, call + 11), q, OPTS);
          seen.push(...ids(p.items));
          if (!p.markers?.next) break;
          marker = p.markers.next;
        }
        expect(seen).toHaveLength(25);
        expect(new Set(seen).size).toBe(25);
      }
    });
  }

  it('treats an empty sort_by as the default id order', () => {
    expect(ids(paginate(shuffled(AG, 5), { sort_by: '' }, OPTS).items)).toEqual(ids(AG));
  });
});

describe('paginate: equality filters', () => {
  it('keeps only items whose field equals the filter value', () => {
    expect(ids(paginate(AG, { status: 'ACTIVE' }, OPTS).items)).toEqual(['b', 'd', 'f']);
  });

  it('ANDs several filters', () => {
    expect(ids(paginate(AG, { status: 'ACTIVE', name: 'n-d' }, OPTS).items)).toEqual(['d']);
    expect(ids(paginate(AG, { status: 'PENDING', name: 'n-d' }, OPTS).items)).toEqual([]);
  });

  it('pages over the filtered list', () => {
    const p = paginate(AG, { status: 'PENDING', limit: '2' }, OPTS);
    expect(ids(p.items)).toEqual(['a', 'c']);
    expect(p.markers).toEqual({ prev: null, next: 'c' });
    const p2 = paginate(AG, { status: 'PENDING', limit: '2', marker: 'c' }, OPTS);
    expect(ids(p2.items)).toEqual(['e', 'g']);
  });

  it('reads fields through the field accessor when given', () => {
    const opts: ListOptions<Item> = {
      sortable: ['id', 'upper'],
      filterable: ['upper'],
      field: (item, name) => (name === 'upper' ? item.status.toUpperCase().slice(0, 1) : (item as unknown as Record<string, unknown>)[name]),
    };
    expect(ids(paginate(AG, { upper: 'A' }, opts).items)).toEqual(['b', 'd', 'f']);
    expect(ids(paginate(AG, { sort_by: 'upper', limit: '3' }, opts).items)).toEqual(['b', 'd', 'f']);
  });
});
