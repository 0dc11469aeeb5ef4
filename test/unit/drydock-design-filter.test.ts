import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../layers/core/errors.ts';
import { applyNodeFilter, bootactionTargets, loadDesign, type NodeFilter, parseNodeFilter } from '../../layers/core/drydock/design/index.ts';
import { siteTexts } from '../fixtures/drydock/load.ts';

/**
 * The lab site's effective nodes:
 *
 * | node      | tags          | owner_data (labels)                   | rack  |
 * |-----------|---------------|---------------------------------------|-------|
 * | rack1-n01 | control       | site=lab1 role=control zone=a         | rack1 |
 * | rack1-n02 | compute, gpu  | site=lab1 role=compute zone=a         | rack1 |
 * | rack2-n03 | compute       | site=lab1 role=compute zone=b         | rack2 |
 */
const { design } = loadDesign(siteTexts());
const N1 = 'rack1-n01';
const N2 = 'rack1-n02';
const N3 = 'rack2-n03';
const ALL = [N1, N2, N3];

type Criteria = Omit<NodeFilter, 'filter_type'>;
/** One filter_set element under a set type that does not change it. */
const one = (filter_type: 'union' | 'intersection', criteria: Criteria) => ({ filter_set_type: 'union', filter_set: [{ filter_type, ...criteria }] });

describe('applyNodeFilter', () => {
  it.each([null, undefined])('selects every node for a %s filter', (f) => {
    expect(applyNodeFilter(design, f)).toEqual(ALL);
  });

  describe('single criteria (the same under union and intersection)', () => {
    const cases: [string, Criteria, string[]][] = [
      ['node_names', { node_names: [N3, N1] }, [N1, N3]],
      ['node_names, unknown', { node_names: ['rack9-n99'] }, []],
      ['node_tags, one tag', { node_tags: ['gpu'] }, [N2]],
      ['node_tags, any listed tag', { node_tags: ['control', 'gpu'] }, [N1, N2]],
      ['node_tags, a tag only a profile had (lists replace, they do not merge)', { node_tags: ['base'] }, []],
      ['rack_names', { rack_names: ['rack2'] }, [N3]],
      ['rack_names, both', { rack_names: ['rack1', 'rack2'] }, ALL],
      ['node_labels, one pair', { node_labels: { zone: 'a' } }, [N1, N2]],
      ['node_labels, inherited pair', { node_labels: { site: 'lab1' } }, ALL],
      ['node_labels, every pair must match (AND)', { node_labels: { zone: 'a', role: 'compute' } }, [N2]],
      ['node_labels, AND with no match', { node_labels: { zone: 'b', role: 'control' } }, []],
      ['node_labels, unknown key', { node_labels: { colour: 'red' } }, []],
      ['rack_labels, matches the universe as documented', { rack_labels: { zone: 'b' } }, ALL],
    ];
    for (const type of ['union', 'intersection'] as const) {
      it.each(cases)(`${type}: %s`, (_, criteria, expected) => {
        expect(applyNodeFilter(design, one(type, criteria))).toEqual(expected);
      });
    }
  });

  it('matches node_labels against owner_data, not a separate label map, and compares scalars as strings', () => {
    const { design: d } = loadDesign([
      siteTexts()[0] as string,
      `schema: drydock/BaremetalNode/v1
metadata: {name: n9}
data:
  addressing: [{network: oob, address: 127.0.0.9}]
  metadata: {owner_data: {rank: "1"}}
`,
    ]);
    expect(applyNodeFilter(d, one('union', { node_labels: { rank: 1 } }))).toEqual(['n9']);
    expect(applyNodeFilter(d, one('union', { node_labels: { rank: '2' } }))).toEqual([]);
  });

  describe('filter_type combines the criteria of one element', () => {
    const criteria: Criteria = { node_tags: ['compute'], rack_names: ['rack1'] };
    it.each([
      ['union', ALL],
      ['intersection', [N2]],
    ] as const)('%s', (type, expected) => {
      expect(applyNodeFilter(design, one(type, criteria))).toEqual(expected);
    });

    it.each([
      // criteria                                             union            intersection
      [{ node_names: [N1], node_tags: ['gpu'] }, [N1, N2], []],
      [{ node_tags: ['compute'], node_labels: { zone: 'b' } }, [N2, N3], [N3]],
      [{ rack_names: ['rack1'], node_labels: { role: 'control' } }, [N1, N2], [N1]],
      [{ node_names: [N1, N2, N3], node_tags: ['compute'], rack_names: ['rack1'], node_labels: { zone: 'a' } }, ALL, [N2]],
      [{ node_names: [N1], rack_labels: { zone: 'a' } }, ALL, [N1]],
    ] as [Criteria, string[], string[]][])('%j → union %j, intersection %j', (c, union, intersection) => {
      expect(applyNodeFilter(design, one('union', c))).toEqual(union);
      expect(applyNodeFilter(design, one('intersection', c))).toEqual(intersection);
    });

    it('ignores absent and empty criteria (the drydock CLI sends rack_names: [])', () => {
      expect(applyNodeFilter(design, { filter_set_type: 'intersection', filter_set: [{ filter_type: 'union', node_names: [N1, N2], rack_names: [] }] })).toEqual([N1, N2]);
      expect(applyNodeFilter(design, one('intersection', { node_names: [N3], node_tags: [], node_labels: {}, rack_labels: {} }))).toEqual([N3]);
    });

    it.each(['union', 'intersection'] as const)('selects nothing for an element without criteria (%s)', (type) => {
      expect(applyNodeFilter(design, one(type, {}))).toEqual([]);
    });
  });

  describe('filter_set_type combines the elements', () => {
    const gpu = { filter_type: 'union', node_tags: ['gpu'] };
    const rack1 = { filter_type: 'union', rack_names: ['rack1'] };
    const zoneB = { filter_type: 'union', node_labels: { zone: 'b' } };
    it.each([
      ['union', [gpu, zoneB], [N2, N3]],
      ['intersection', [gpu, zoneB], []],
      ['union', [rack1, gpu], [N1, N2]],
      ['intersection', [rack1, gpu], [N2]],
      ['intersection', [rack1], [N1, N2]],
      ['union', [], []],
      ['intersection', [], []],
    ] as const)('%s of %j', (type, set, expected) => {
      expect(applyNodeFilter(design, { filter_set_type: type, filter_set: set })).toEqual(expected);
    });
  });

  describe('invalid filters', () => {
    it.each([
      [{ filter_set_type: 'all', filter_set: [] }, 'Invalid node_filter.filter_set_type: '],
      [{ filter_set_type: 'union' }, 'Invalid node_filter.filter_set: '],
      [{ filter_set_type: 'union', filter_set: [{ node_names: [N1] }] }, 'Invalid node_filter.filter_set.0.filter_type: '],
      [{ filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_name: [N1] }] }, 'Invalid node_filter.filter_set.0: Unrecognized key: "node_name"'],
      [{ filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_tags: 'gpu' }] }, 'Invalid node_filter.filter_set.0.node_tags: '],
      ['node_names=rack1-n01', 'Invalid node_filter: '],
    ])('%j is a ValidationError', (filter, message) => {
      expect(() => applyNodeFilter(design, filter)).toThrow(ValidationError);
      expect(() => applyNodeFilter(design, filter)).toThrow(message);
    });

    it('parses a valid filter and answers null for none', () => {
      expect(parseNodeFilter(null)).toBeNull();
      expect(parseNodeFilter(one('union', { node_names: [N1] }))).toEqual({ filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_names: [N1] }] });
    });
  });
});

describe('bootactionTargets', () => {
  it('maps every node to the boot actions whose filter selects it', () => {
    expect(Object.fromEntries(bootactionTargets(design))).toEqual({
      [N1]: ['hello'],
      [N2]: ['install-agent', 'hello'],
      [N3]: ['install-agent', 'hello'],
    });
  });
});
