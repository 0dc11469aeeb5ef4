import { describe, expect, it } from 'vitest';
import { KINDS, loadDesign, type ValidationMessage } from '../../layers/core/drydock/design/index.ts';
import { fixture, siteTexts } from '../fixtures/drydock/load.ts';

const errors = (messages: ValidationMessage[]) => messages.filter((m) => m.error);
const names = <T extends { name: string }>(docs: T[]) => docs.map((d) => d.name);

describe('loadDesign', () => {
  describe('the lab site', () => {
    const { design, messages } = loadDesign(siteTexts());

    it('reads every document of the four texts, by kind, in order', () => {
      expect(Object.keys(design).sort()).toEqual([...KINDS].sort());
      expect(names(design.Region)).toEqual(['lab1']);
      expect(names(design.Rack)).toEqual(['rack1', 'rack2']);
      expect(names(design.Network)).toEqual(['oob', 'pxe', 'storage']);
      expect(names(design.NetworkLink)).toEqual(['oob-link', 'pxe-link', 'gp-link']);
      expect(names(design.HardwareProfile)).toEqual(['generic']);
      expect(names(design.HostProfile)).toEqual(['defaults', 'compute', 'control']);
      expect(names(design.BaremetalNode)).toEqual(['rack1-n01', 'rack1-n02', 'rack2-n03']);
      expect(names(design.BootAction)).toEqual(['install-agent', 'hello']);
    });

    it('keeps the envelope: schema, the whole metadata block, and where the document came from', () => {
      const region = design.Region[0];
      expect(region).toMatchObject({
        kind: 'Region',
        schema: 'drydock/Region/v1',
        name: 'lab1',
        metadata: { schema: 'metadata/Document/v1', name: 'lab1', labels: { application: 'drydock' } },
        source: { text: 0, document: 1 },
      });
      const n02 = design.BaremetalNode[1];
      expect(n02?.source).toEqual({ text: 2, document: 1, line: 23 });
    });

    it('types the data as upstream defines it, with our oob.port extension', () => {
      const n01 = design.BaremetalNode[0];
      expect(n01?.data.oob).toEqual({ port: 8001 });
      expect(n01?.data.addressing).toEqual([
        { network: 'oob', address: '127.0.0.11' },
        { network: 'pxe', address: '10.0.0.11' },
        { network: 'storage', address: '10.1.0.11' },
      ]);
      expect(design.NetworkLink[2]?.data.bonding?.mode).toBe('802.3ad');
      expect(design.HardwareProfile[0]?.data.hugepages).toEqual({ dpdk: { size: '1G', count: 16 } });
      expect(design.HostProfile[1]?.data.interfaces).toEqual({ bond0: null });
    });

    it('reads YAML 1.1 like PyYAML: `signaling: no` is false', () => {
      expect(design.BootAction[1]?.data.signaling).toBe(false);
      expect(design.BootAction[1]?.data.assets[1]?.data).toEqual({ curl: null, jq: '1.6-2' });
    });

    it('ignores documents of other schemas with an Info note and reports nothing else', () => {
      expect(messages).toEqual([
        {
          kind: 'ValidationMessage',
          name: 'DD000',
          message: 'Document at text 0, document 0, line 3, column 1 with schema "deckhand/LayeringPolicy/v1" ignored: not a Drydock document.',
          error: false,
          level: 'Info',
          diagnostic: 'Only drydock/<Kind>/v1 documents are part of a site design.',
          documents: [],
        },
      ]);
    });
  });

  it('merges several texts into one design', () => {
    const { design } = loadDesign([fixture('site/site.yaml'), fixture('site/nodes.yaml')]);
    expect(design.Network).toHaveLength(3);
    expect(design.BaremetalNode).toHaveLength(3);
    expect(design.HostProfile).toHaveLength(0);
    expect(design.BaremetalNode.map((n) => n.source.text)).toEqual([1, 1, 1]);
  });

  describe('YAML errors', () => {
    const { design, messages } = loadDesign(['', fixture('broken/yaml-syntax.yaml')]);

    it('names the text, the document index and the line of each syntax error', () => {
      expect(errors(messages).length).toBeGreaterThan(0);
      for (const m of errors(messages)) {
        expect(m).toMatchObject({ name: 'DD000', level: 'Error', documents: [] });
        expect(m.message).toMatch(/^YAML syntax error in text 1, document 1, line 14, column \d+: /);
      }
    });

    it('still reads the documents before and after the broken one', () => {
      expect(names(design.Network)).toEqual(['good-before', 'good-after']);
    });

    it('reports a stream that is broken before any document', () => {
      const r = loadDesign(['schema: x\n]\n']);
      expect(errors(r.messages)[0]?.message).toMatch(/^YAML syntax error in text 0, document 0, line 2, column 1: /);
    });

    it('refuses duplicate keys, which PyYAML would silently collapse', () => {
      const r = loadDesign(['schema: drydock/Network/v1\nmetadata: {name: n}\ndata: {cidr: 10.0.0.0/8, cidr: 10.0.0.0/16}\n']);
      expect(errors(r.messages)[0]?.message).toMatch(/line 3, column \d+: Map keys must be unique/);
      expect(r.design.Network).toEqual([]);
    });

    it('bounds alias expansion', () => {
      const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
      const r = loadDesign([bomb]);
      expect(errors(r.messages)[0]?.message).toMatch(/^Cannot read text 0, document 0, line 1, column 1: .*alias/i);
    });

    it('skips empty documents and empty texts silently', () => {
      expect(loadDesign(['', '---\n...\n', '# only a comment\n']).messages).toEqual([]);
    });
  });

  describe('envelope and schema errors', () => {
    const { design, messages } = loadDesign([fixture('broken/schema-errors.yaml')]);
    const texts = messages.map((m) => `${m.level} ${m.name} ${m.message}`);

    it('reports each schema problem of a document as DD001 and leaves the document out', () => {
      expect(texts).toContain('Error DD001 Network:v1 schema validation error: data.vlan: Invalid input: expected string, received number (text 0, document 0, line 2, column 1).');
      expect(texts).toContain('Error DD001 Network:v1 schema validation error: data: Unrecognized key: "colour" (text 0, document 0, line 2, column 1).');
      expect(messages.find((m) => m.name === 'DD001')?.documents).toEqual([{ schema: 'drydock/Network/v1', name: 'numeric-vlan' }]);
      expect(messages.find((m) => m.name === 'DD001')?.diagnostic).toBe('Invalid input file - see Drydock Troubleshooting Guide for DD001');
    });

    it('requires at least one address on a node and an oob port in range', () => {
      expect(texts.filter((t) => t.includes('BaremetalNode:v1'))).toEqual([
        'Error DD001 BaremetalNode:v1 schema validation error: data.oob.port: Too big: expected number to be <=65535 (text 0, document 1, line 11, column 1).',
        'Error DD001 BaremetalNode:v1 schema validation error: data.addressing: BaremetalNode needs at least 1 assigned address (text 0, document 1, line 11, column 1).',
      ]);
    });

    it('refuses unknown drydock kinds, nameless documents and non-mappings with DD000', () => {
      expect(texts).toContain('Error DD000 Invalid document - Kind Server and Version v1 (text 0, document 2, line 21, column 1).');
      expect(texts).toContain('Error DD000 Document at text 0, document 3, line 27, column 1 (drydock/Network/v1) has no metadata.name.');
      expect(texts).toContain('Error DD000 Document at text 0, document 4, line 33, column 1 is not a mapping.');
    });

    it('notes and skips documents of other applications', () => {
      expect(texts).toContain(
        'Info DD000 Document at text 0, document 5, line 37, column 1 with schema "promenade/Genesis/v1" ignored: not a Drydock document.',
      );
    });

    it('keeps the valid documents', () => {
      expect(names(design.Network)).toEqual(['fine']);
      expect(design.BaremetalNode).toEqual([]);
    });
  });

  it.each(['444', '0644', '755'])('accepts asset permissions %s', (permissions) => {
    const text = `schema: drydock/BootAction/v1\nmetadata: {name: a}\ndata: {assets: [{type: file, path: /etc/a, data: x, permissions: '${permissions}'}]}\n`;
    const { design, messages } = loadDesign([text]);
    expect(messages).toEqual([]);
    expect(design.BootAction[0]?.data.assets[0]?.permissions).toBe(permissions);
  });

  it('refuses BootAction asset shapes while reading: relative path, symbolic or non-octal permissions, type, pipeline segments, filter type', () => {
    const { design, messages } = loadDesign([fixture('broken/bootaction-schema.yaml')]);
    expect(design.BootAction).toEqual([]);
    expect(messages.map((m) => m.message.replace(/ \(text .*\)\.$/, ''))).toEqual([
      'BootAction:v1 schema validation error: data.assets[0].path: must be an absolute path (start with "/")',
      'BootAction:v1 schema validation error: data.assets[0].permissions: must be three octal digits, e.g. "444"',
      'BootAction:v1 schema validation error: data.assets[1].type: Invalid option: expected one of "unit"|"file"|"pkg_list"',
      'BootAction:v1 schema validation error: data.assets[2].location_pipeline[0]: Invalid input: expected "template"',
      'BootAction:v1 schema validation error: data.assets[2].data_pipeline[0]: Invalid option: expected one of "base64_decode"|"base64_encode"|"utf8_decode"|"utf8_encode"|"template"',
      'BootAction:v1 schema validation error: data.assets[2].permissions: must be three octal digits, e.g. "444"',
      'BootAction:v1 schema validation error: data.node_filter.filter_set_type: Invalid option: expected one of "intersection"|"union"',
    ]);
    expect(messages.every((m) => m.name === 'DD001' && m.error)).toBe(true);
  });
});
