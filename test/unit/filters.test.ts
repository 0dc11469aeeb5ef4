import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../layers/core/errors.ts';
import type { Node } from '../../layers/core/inventory/node.ts';
import {
  HOST_COLUMNS,
  MAX_FILTER_BYTES,
  MAX_FILTER_DEPTH,
  MAX_FILTER_TERMS,
  matches,
  parseRequirements,
  referencedKeys,
  type Requirement,
} from '../../layers/core/leases/filters.ts';

/** A host as the filters see it: facts are typed columns, extra capabilities are strings. */
function host(overrides: Partial<Node> = {}): Node {
  return {
    id: 'n-1',
    name: 'bm-017',
    host_id: '17',
    reservable: true,
    facts: { vcpus: 64, memory_mb: 262144, local_gb: 1800, hypervisor_type: 'ironic', cpu_info: 'Intel Xeon Gold 6338' },
    extra: { gpu: 'a100', rack: 'r12', cores: '10', model: 'Dell R750 xa' },
    addresses: [],
    allocations: {},
    version: 1,
    created_at: '2029-12-20T10:00:00.000Z',
    updated_at: null,
    ...overrides,
  };
}

/** Parses a filter given as a JSON string and evaluates it on the host. */
const holds = (filter: unknown[], node: Node = host()): boolean => matches(parseRequirements(JSON.stringify(filter), 'resource_properties'), node);

function malformedError(raw: unknown): ValidationError {
  try {
    parseRequirements(raw, 'resource_properties');
  } catch (err) {
    return err as ValidationError;
  }
  throw new Error(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe('parseRequirements', () => {
  it('treats "", "[]", an empty list, null and undefined as no constraint', () => {
    for (const raw of ['', '[]', [], null, undefined]) {
      expect(parseRequirements(raw, 'hypervisor_properties')).toBeUndefined();
      expect(matches(parseRequirements(raw, 'hypervisor_properties'), host())).toBe(true);
    }
  });

  it('parses a triple given as a JSON string into a term without the $', () => {
    expect(parseRequirements('["==", "$memory_mb", "4096"]', 'hypervisor_properties')).toEqual({
      kind: 'term',
      op: '==',
      key: 'memory_mb',
      value: '4096',
    });
  });

  it('accepts an already-decoded list the same as its JSON string', () => {
    const asList = parseRequirements(['and', ['>=', '$vcpus', '32'], ['==', '$gpu', 'a100']], 'resource_properties');
    const asString = parseRequirements('["and", [">=", "$vcpus", "32"], ["==", "$gpu", "a100"]]', 'resource_properties');
    expect(asList).toEqual(asString);
    expect(asList).toEqual({
      kind: 'all',
      of: [
        { kind: 'term', op: '>=', key: 'vcpus', value: '32' },
        { kind: 'term', op: '==', key: 'gpu', value: 'a100' },
      ],
    });
  });

  it('normalises the "=" alias to "=="', () => {
    expect(parseRequirements('["=", "$gpu", "a100"]', 'resource_properties')).toMatchObject({ op: '==' });
  });

  it('parses "or" and nested and/or lists (our superset of upstream)', () => {
    expect(parseRequirements('["or", ["==", "$gpu", "a100"], ["and", ["==", "$gpu", "h100"], ["==", "$rack", "r1"]]]', 'x')).toEqual({
      kind: 'any',
      of: [
        { kind: 'term', op: '==', key: 'gpu', value: 'a100' },
        {
          kind: 'all',
          of: [
            { kind: 'term', op: '==', key: 'gpu', value: 'h100' },
            { kind: 'term', op: '==', key: 'rack', value: 'r1' },
          ],
        },
      ],
    });
  });

  it('keeps a quoted number as the string value', () => {
    expect(parseRequirements('[">=", "$memory_mb", "65536"]', 'x')).toMatchObject({ value: '65536' });
  });

  it('keeps spaces inside values', () => {
    expect(parseRequirements('["==", "$cpu_info", "Intel Xeon Gold 6338"]', 'x')).toMatchObject({ value: 'Intel Xeon Gold 6338' });
  });

  const malformed: [string, unknown][] = [
    ['bad JSON', '["==", "$gpu", "a100"'],
    ['bare words that are not JSON', 'gpu == a100'],
    ['a JSON object instead of a list', '{"gpu": "a100"}'],
    ['a JSON string instead of a list', '"a100"'],
    ['a JSON number instead of a list', '42'],
    ['an unknown operator', '["~=", "$gpu", "a100"]'],
    ['an operator that is not a string', '[1, "$gpu", "a100"]'],
    ['a nested empty list as the operator', '[[]]'],
    ['a key without $', '["==", "gpu", "a100"]'],
    ['a key that is only $', '["==", "$", "a100"]'],
    ['a key that is not a string', '["==", 5, "a100"]'],
    ['an empty value', '["==", "$gpu", ""]'],
    ['a null value', '["==", "$gpu", null]'],
    ['a boolean value', '["==", "$gpu", true]'],
    ['an object value', '["==", "$gpu", {"v": 1}]'],
    ['a term with two elements', '["==", "$gpu"]'],
    ['a term with four elements', '["==", "$gpu", "a100", "h100"]'],
    ['a lone operator', '["=="]'],
    ['"and" without terms', '["and"]'],
    ['"or" without terms', '["or"]'],
    ['"and" with a malformed term inside', '["and", ["==", "$gpu", "a100"], ["==", "rack", "r1"]]'],
    ['"and" with an empty list inside', '["and", []]'],
    ['"or" with a string inside', '["or", "$gpu"]'],
    ['a decoded list with an unknown operator', ['like', '$gpu', 'a%']],
    ['whitespace only', '   '],
  ];
  for (const [what, raw] of malformed) {
    it(`rejects ${what} as MALFORMED_REQUIREMENTS (400)`, () => {
      const err = malformedError(raw);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.statusCode).toBe(400);
      expect(err.errorName).toBe('MALFORMED_REQUIREMENTS');
      expect(err.message).toMatch(/^Malformed requirements /);
      expect(err.message).toContain('resource_properties');
    });
  }
});

describe('matches', () => {
  it('applies every comparison operator on numeric host columns', () => {
    // vcpus = 64
    expect(holds(['==', '$vcpus', '64'])).toBe(true);
    expect(holds(['==', '$vcpus', '63'])).toBe(false);
    expect(holds(['=', '$vcpus', '64'])).toBe(true);
    expect(holds(['=', '$vcpus', '65'])).toBe(false);
    expect(holds(['!=', '$vcpus', '64'])).toBe(false);
    expect(holds(['!=', '$vcpus', '32'])).toBe(true);
    expect(holds(['<', '$vcpus', '65'])).toBe(true);
    expect(holds(['<', '$vcpus', '64'])).toBe(false);
    expect(holds(['<=', '$vcpus', '64'])).toBe(true);
    expect(holds(['<=', '$vcpus', '63'])).toBe(false);
    expect(holds(['>', '$vcpus', '63'])).toBe(true);
    expect(holds(['>', '$vcpus', '64'])).toBe(false);
    expect(holds(['>=', '$vcpus', '64'])).toBe(true);
    expect(holds(['>=', '$vcpus', '65'])).toBe(false);
  });

  it('applies every comparison operator on string extra capabilities', () => {
    // gpu = "a100"
    expect(holds(['==', '$gpu', 'a100'])).toBe(true);
    expect(holds(['=', '$gpu', 'a100'])).toBe(true);
    expect(holds(['==', '$gpu', 'h100'])).toBe(false);
    expect(holds(['!=', '$gpu', 'h100'])).toBe(true);
    expect(holds(['!=', '$gpu', 'a100'])).toBe(false);
    expect(holds(['<', '$gpu', 'b'])).toBe(true);
    expect(holds(['<', '$gpu', 'a100'])).toBe(false);
    expect(holds(['<=', '$gpu', 'a100'])).toBe(true);
    expect(holds(['>', '$gpu', 'a0'])).toBe(true);
    expect(holds(['>', '$gpu', 'a100'])).toBe(false);
    expect(holds(['>=', '$gpu', 'a100'])).toBe(true);
    expect(holds(['>=', '$gpu', 'b'])).toBe(false);
  });

  it('compares numerically when both sides are numbers ("10" > "9"), unlike upstream string comparison', () => {
    // cores = "10" (an extra capability, stored as a string)
    expect(holds(['>', '$cores', '9'])).toBe(true);
    expect(holds(['<', '$cores', '9'])).toBe(false);
    expect(holds(['>=', '$cores', '10.0'])).toBe(true);
    expect(holds(['==', '$cores', '010'])).toBe(true);
    expect(holds(['<', '$cores', '100'])).toBe(true);
  });

  it('compares as strings when either side is not a number', () => {
    // "10" vs "9x": not numeric, so lexicographic: "1" < "9"
    expect(holds(['<', '$cores', '9x'])).toBe(true);
    // "a100" vs "9": lexicographic, "a" > "9"
    expect(holds(['>', '$gpu', '9'])).toBe(true);
    // "a100" vs "a20": lexicographic ("1" < "2") even though the tails look numeric
    expect(holds(['<', '$gpu', 'a20'])).toBe(true);
  });

  it('matches values with spaces exactly', () => {
    expect(holds(['==', '$cpu_info', 'Intel Xeon Gold 6338'])).toBe(true);
    expect(holds(['==', '$cpu_info', 'Intel Xeon Gold'])).toBe(false);
    expect(holds(['==', '$model', 'Dell R750 xa'])).toBe(true);
    expect(holds(['!=', '$model', 'Dell R750'])).toBe(true);
  });

  it('never matches a host lacking the extra capability, whatever the operator', () => {
    for (const op of ['==', '=', '!=', '<', '<=', '>', '>=']) {
      expect(holds([op, '$nic', 'x'])).toBe(false);
      expect(holds([op, '$nic', 'null'])).toBe(false);
    }
  });

  it('never matches a host whose numeric column is unset, except for the null literal', () => {
    const bare = host({ facts: {} });
    expect(holds(['<', '$vcpus', '1000'], bare)).toBe(false);
    expect(holds(['!=', '$vcpus', '1'], bare)).toBe(false);
    expect(holds(['==', '$vcpus', 'null'], bare)).toBe(true);
  });

  it('treats the literal null on a host column as "the column is unset"', () => {
    const noZone = host();
    const zoned = host({ facts: { ...host().facts, availability_zone: 'nova' } });
    expect(holds(['==', '$availability_zone', 'null'], noZone)).toBe(true);
    expect(holds(['==', '$availability_zone', 'null'], zoned)).toBe(false);
    expect(holds(['!=', '$availability_zone', 'null'], noZone)).toBe(false);
    expect(holds(['!=', '$availability_zone', 'null'], zoned)).toBe(true);
    expect(holds(['<', '$availability_zone', 'null'], zoned)).toBe(false);
  });

  it('compares the literal null as a plain string on extra capabilities', () => {
    const withNull = host({ extra: { label: 'null' } });
    expect(holds(['==', '$label', 'null'], withNull)).toBe(true);
    expect(holds(['==', '$label', 'null'], host())).toBe(false);
  });

  it('resolves hypervisor_hostname to the node name and service_name to it by default', () => {
    expect(holds(['==', '$hypervisor_hostname', 'bm-017'])).toBe(true);
    expect(holds(['==', '$hypervisor_hostname', 'bm-018'])).toBe(false);
    expect(holds(['==', '$service_name', 'bm-017'])).toBe(true);
    const named = host({ facts: { service_name: 'compute-17' } });
    expect(holds(['==', '$service_name', 'compute-17'], named)).toBe(true);
  });

  it('requires every term of "and" and any term of "or"', () => {
    expect(holds(['and', ['==', '$gpu', 'a100'], ['>=', '$vcpus', '64']])).toBe(true);
    expect(holds(['and', ['==', '$gpu', 'a100'], ['>', '$vcpus', '64']])).toBe(false);
    expect(holds(['or', ['==', '$gpu', 'h100'], ['>=', '$vcpus', '64']])).toBe(true);
    expect(holds(['or', ['==', '$gpu', 'h100'], ['>', '$vcpus', '64']])).toBe(false);
    expect(holds(['and', ['==', '$gpu', 'a100']])).toBe(true);
  });

  it('evaluates nested and/or', () => {
    const f = ['and', ['or', ['==', '$gpu', 'h100'], ['==', '$rack', 'r12']], ['or', ['<', '$vcpus', '8'], ['>', '$memory_mb', '131072']]];
    expect(holds(f)).toBe(true);
    expect(holds(f, host({ extra: { gpu: 'a100', rack: 'r1' } }))).toBe(false);
    expect(holds(f, host({ facts: { vcpus: 64, memory_mb: 65536 } }))).toBe(false);
    expect(holds(['or', ['and', ['==', '$gpu', 'a100'], ['==', '$rack', 'r1']], ['==', '$nic', 'x']])).toBe(false);
  });

  it('lists host columns (facts, hypervisor_hostname, reservable)', () => {
    for (const c of ['vcpus', 'memory_mb', 'local_gb', 'hypervisor_type', 'hypervisor_version', 'service_name', 'availability_zone', 'hypervisor_hostname', 'reservable']) {
      expect(HOST_COLUMNS).toContain(c);
    }
    expect(HOST_COLUMNS).not.toContain('gpu');
  });
});

/** `["and", ["and", ... ["==", "$gpu", "a100"] ...]]`: `levels` lists, the innermost a term. */
function nested(levels: number): string {
  return `${'["and", '.repeat(levels - 1)}["==", "$gpu", "a100"]${']'.repeat(levels - 1)}`;
}

describe('bounds', () => {
  const rejects = (raw: unknown, reason: RegExp) => {
    const err = malformedError(raw);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.errorName).toBe('MALFORMED_REQUIREMENTS');
    expect(err.message).toMatch(reason);
    // The message quotes the filter, never all of a hostile one.
    expect(err.message.length).toBeLessThan(600);
  };

  it(`accepts lists nested ${MAX_FILTER_DEPTH} deep and refuses ${MAX_FILTER_DEPTH + 1}`, () => {
    expect(matches(parseRequirements(nested(MAX_FILTER_DEPTH), 'x'), host())).toBe(true);
    rejects(nested(MAX_FILTER_DEPTH + 1), /nested deeper than 8 levels/);
  });

  it('refuses 1,500 and 2,000 levels (as text and as a decoded list) without overflowing the stack', () => {
    for (const levels of [1500, 2000]) {
      rejects(`${'['.repeat(levels)}${']'.repeat(levels)}`, /nested deeper than 8 levels/);
      rejects(nested(levels), /nested deeper than 8 levels|longer than 16384 bytes/);
    }
    rejects(`${'['.repeat(100_000)}${']'.repeat(100_000)}`, /longer than 16384 bytes/);
    let deep: unknown[] = ['==', '$gpu', 'a100'];
    for (let i = 0; i < 2000; i++) deep = ['and', deep];
    rejects(deep, /nested deeper than/);
  });

  it(`refuses a filter longer than ${MAX_FILTER_BYTES} bytes, as text or as a list`, () => {
    const long = JSON.stringify(['==', '$gpu', 'x'.repeat(MAX_FILTER_BYTES)]);
    rejects(long, new RegExp(`longer than ${MAX_FILTER_BYTES} bytes`));
    rejects(JSON.parse(long), new RegExp(`longer than ${MAX_FILTER_BYTES} bytes`));
  });

  it(`accepts ${MAX_FILTER_TERMS} terms and refuses one more`, () => {
    const terms = (n: number) => ['and', ...Array.from({ length: n }, (_, i) => ['!=', '$gpu', `v${i}`])];
    expect(referencedKeys(parseRequirements(terms(MAX_FILTER_TERMS), 'x'))).toEqual(['gpu']);
    rejects(terms(MAX_FILTER_TERMS + 1), new RegExp(`more than ${MAX_FILTER_TERMS} terms`));
  });

  it('refuses a $__proto__ key and objects with a __proto__ or constructor key', () => {
    rejects(['==', '$__proto__', 'x'], /"\$__proto__" is a reserved name/);
    rejects('["==", "$__proto__", "x"]', /reserved/);
    rejects('["==", "$gpu", {"__proto__": {"polluted": 1}}]', /reserved/);
    rejects('["==", "$gpu", {"constructor": 1}]', /reserved/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('own capabilities only', () => {
  it('matches no host on the names of Object.prototype ($constructor, $toString, $hasOwnProperty, ...)', () => {
    for (const key of ['constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__']) {
      for (const op of ['==', '!=', '<', '>=']) {
        expect(holds([op, `$${key}`, 'x']), `${op} $${key}`).toBe(false);
        expect(holds([op, `$${key}`, 'null']), `${op} $${key} null`).toBe(false);
      }
    }
  });

  it('matches a host that does have such a capability', () => {
    const odd = host({ extra: Object.fromEntries([['toString', 'yes']]) });
    expect(holds(['==', '$toString', 'yes'], odd)).toBe(true);
    expect(holds(['==', '$toString', 'yes'])).toBe(false);
  });
});

describe('referencedKeys', () => {
  it('returns nothing for no constraint', () => {
    expect(referencedKeys(undefined)).toEqual([]);
    expect(referencedKeys(parseRequirements('[]', 'x'))).toEqual([]);
  });

  it('returns the key of a term without the $', () => {
    expect(referencedKeys(parseRequirements('["==", "$gpu", "a100"]', 'x'))).toEqual(['gpu']);
  });

  it('collects each key of nested and/or once', () => {
    const r = parseRequirements(['and', ['==', '$gpu', 'a100'], ['or', ['==', '$rack', 'r1'], ['!=', '$gpu', 'h100']], ['>', '$vcpus', '8']], 'x') as Requirement;
    expect(referencedKeys(r).sort()).toEqual(['gpu', 'rack', 'vcpus']);
  });
});
