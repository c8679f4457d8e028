import { expect } from 'chai';
import { parseDocuments } from '../../../src/config/documents.js';

describe('config documents', () => {
  it('splits multi-document YAML, skipping empty documents', () => {
    const r = parseDocuments('---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n---\n', { file: 'x.yaml' });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.value.map((d) => d.value)).to.deep.equal([{ a: 1 }, { b: 2 }]);
    expect(r.value.map((d) => d.source)).to.deep.equal([
      { file: 'x.yaml', index: 0 },
      { file: 'x.yaml', index: 1 },
    ]);
  });

  it('keeps YAML 1.2 core scalars: yes/no and dates stay strings', () => {
    const r = parseDocuments('a: yes\nb: 2024-01-01\nc: 0.1s\n');
    expect(r.ok && r.value[0]!.value).to.deep.equal({ a: 'yes', b: '2024-01-01', c: '0.1s' });
  });

  it('reports YAML syntax errors with line and column', () => {
    const r = parseDocuments('a: 1\n---\nb: [1,\n  c: d\n', { file: 'bad.yaml' });
    expect(r.ok).to.equal(false);
    if (r.ok) return;
    expect(r.errors).to.have.length.greaterThan(0);
    expect(r.errors[0]!.document).to.equal('bad.yaml');
    expect(r.errors[0]!.message).to.match(/^YAML syntax error in document 1 at line \d+, column \d+: /);
  });

  it('rejects duplicate keys', () => {
    const r = parseDocuments('a: 1\na: 2\n', { file: 'dup.yaml' });
    expect(r.ok).to.equal(false);
    if (!r.ok) expect(r.errors[0]!.message).to.match(/line 2, column 1: Map keys must be unique/);
  });

  it('accepts a JSON object, array, items list and dump shape', () => {
    const one = { kind: 'Cluster' };
    for (const text of [
      JSON.stringify(one),
      JSON.stringify([one, one]),
      JSON.stringify({ items: [one, one] }),
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [one] }),
      JSON.stringify({ version: 'abc', documents: [one] }),
    ]) {
      const r = parseDocuments(text, { file: 'c.json' });
      expect(r.ok, text).to.equal(true);
      if (r.ok) for (const d of r.value) expect(d.value).to.deep.equal(one);
    }
    const r = parseDocuments(JSON.stringify({ items: [one, one] }), { file: 'c.json' });
    expect(r.ok && r.value.map((d) => d.source.index)).to.deep.equal([0, 1]);
  });

  it('ignores a byte-order mark', () => {
    const r = parseDocuments('\uFEFF{"kind": "Cluster"}', { file: 'bom.json' });
    expect(r.ok && r.value[0]!.value).to.deep.equal({ kind: 'Cluster' });
  });

  it('does not mistake a document with an items field for a list', () => {
    const r = parseDocuments(JSON.stringify({ kind: 'Cluster', items: [] }), { format: 'json' });
    expect(r.ok && r.value.length).to.equal(1);
  });

  it('reports JSON syntax errors with line and column', () => {
    const r = parseDocuments('{\n  "a": 1,\n  oops\n}', { file: 'c.json' });
    expect(r.ok).to.equal(false);
    if (!r.ok) {
      expect(r.errors[0]!.document).to.equal('c.json');
      expect(r.errors[0]!.message).to.match(/^invalid JSON: line 3, column 3: /);
    }
  });
});
