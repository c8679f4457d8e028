import { expect } from 'chai';
import { EchoService } from '../../../src/gen/outrigger/examples/transcoding/v1/echo_pb.js';
import { seededRandom } from '../../../src/core/random.js';
import { compileBindings } from '../../../src/proxy/transcode/http-rule.js';
import { parseQuery } from '../../../src/proxy/transcode/query.js';
import { RestMatcher } from '../../../src/proxy/transcode/rest-matcher.js';
import { unescapePathValue } from '../../../src/proxy/transcode/path-unescape.js';
import { JsonSeqSplitter } from '../../../src/proxy/transcode/json-seq.js';
import { parseRouteTemplate } from '../../../src/proxy/router/route-template.js';

/** Golden cases for http rules (parse → compile → match) and bounded fuzzing of the parsers. */
describe('transcode: http rules', () => {
  const matcher = new RestMatcher(compileBindings([EchoService]));

  const golden: Array<[string, string, string | number]> = [
    ['GET', '/v1/samples/1', 'Get'],
    ['GET', '/v1/projects/a/samples/b', 'Get'],
    ['GET', '/v1/query', 'Query'],
    ['POST', '/v1/samples', 'Create'],
    ['POST', '/v1/samples/1/sub', 'CreateSub'],
    ['PATCH', '/v1/samples/1', 'Update'],
    ['POST', '/v1/samples/1:archive', 'Archive'],
    ['SEARCH', '/v1/search', 'Search'],
    ['DELETE', '/v1/samples/1', 'Remove'],
    ['GET', '/v1/files', 'Files'], // `**` takes zero or more segments
    ['GET', '/v1/files/', 'Files'],
    ['GET', '/v1/files/a/b/c', 'Files'],
    ['GET', '/v1/subs/a/n/1', 'Nested'],
    ['POST', '/v1/uploads/x', 'Upload'],
    ['GET', '/v1/repeat/x', 'Repeat'],
    ['POST', '/v1/collect', 'Collect'],
    ['PUT', '/v1/samples/1', 405],
    ['GET', '/v1/samples/1:archive', 'Get'],
    ['GET', '/v1/samples', 405],
    ['GET', '/v2/samples/1', 404],
    ['GET', '/v1/samples/1/extra', 404],
    ['GET', '/v1/projects/a/samples', 404],
  ];
  for (const [method, path, want] of golden) {
    it(`${method} ${path} → ${want}`, () => {
      const m = matcher.match(method, path);
      if (typeof want === 'number') expect(m.kind).to.equal(want === 404 ? 'not_found' : 'method_not_allowed');
      else {
        expect(m.kind).to.equal('match');
        if (m.kind === 'match') expect(m.binding.method.name).to.equal(want);
      }
    });
  }

  it('compiles path variables to field chains and knows multi-segment ones', () => {
    const b = matcher.all.find((x) => x.template.source === '/v1/{name=projects/*/samples/*}')!;
    expect(b.pathVars.map((v) => [v.name, v.multi, v.fields.map((f) => f.name)])).to.deep.equal([['name', true, ['name']]]);
    const n = matcher.all.find((x) => x.method.name === 'Nested')!;
    expect(n.pathVars.map((v) => v.fields.map((f) => f.name).join('.'))).to.deep.equal(['sub.subfield', 'sub.n']);
    const u = matcher.all.find((x) => x.method.name === 'CreateSub')!;
    expect(typeof u.body === 'object' && u.body.name).to.equal('sub');
    expect(u.responseBody?.name).to.equal('sub');
  });

  it('unescapes path values per mode', () => {
    expect(unescapePathValue('a%2Fb%20c%3A', 'except_reserved')).to.equal('a%2Fb c%3A');
    expect(unescapePathValue('a%2Fb%20c%3A', 'except_slash')).to.equal('a%2Fb c:');
    expect(unescapePathValue('a%2Fb%20c%3A', 'all')).to.equal('a/b c:');
    expect(unescapePathValue('%zz', 'all')).to.equal(undefined);
    expect(unescapePathValue('%C3%A9', 'all')).to.equal('é');
  });

  it('parses query strings (repeats, maps, plus, escapes)', () => {
    const q = parseQuery('a=1&a=2&m[k]=v&s=x+y&e=%C3%A9&flag');
    expect(q.ok && q.params.map((p) => [p.path, p.mapKey ?? null, p.value])).to.deep.equal([
      ['a', null, '1'],
      ['a', null, '2'],
      ['m', 'k', 'v'],
      ['s', null, 'x y'],
      ['e', null, 'é'],
      ['flag', null, ''],
    ]);
    expect(parseQuery('a=%zz').ok).to.equal(false);
  });

  it('splits JSON arrays and NDJSON incrementally, whatever the chunking', () => {
    const text = '[{"a":"x,]\\"}"},{"b":[1,{"c":2}]} , 3]';
    const rnd = seededRandom(7);
    for (let round = 0; round < 200; round++) {
      const got: string[] = [];
      const s = new JsonSeqSplitter((t) => got.push(t), 1000, false);
      let i = 0;
      while (i < text.length) {
        const n = 1 + rnd.int(5);
        s.push(text.slice(i, i + n));
        i += n;
      }
      s.end();
      expect(s.failed).to.equal(undefined);
      expect(got.map((g) => JSON.parse(g))).to.deep.equal([{ a: 'x,]"}' }, { b: [1, { c: 2 }] }, 3]);
    }
    const nd: string[] = [];
    const s = new JsonSeqSplitter((t) => nd.push(t), 1000, true);
    s.push('{"a":1}\n\n{"b":"\\n"}\n{"c"');
    s.push(':3}');
    s.end();
    expect(nd).to.deep.equal(['{"a":1}', '{"b":"\\n"}', '{"c":3}']);
    const bad = new JsonSeqSplitter(() => {}, 1000, false);
    bad.push('[1,2');
    bad.end();
    expect(bad.failed).to.match(/truncated/);
  });

  describe('fuzz (seeded, bounded)', () => {
    const ALPHABET = ['/', '{', '}', '=', '*', '**', ':', '.', 'a', 'b', 'v1', '%2F', '?', ' ', 'x.y', '-', '_', '&', '[', ']', '+', '%', '%zz'];
    const rnd = seededRandom(20240611);
    const word = (n: number): string => Array.from({ length: rnd.int(n) }, () => ALPHABET[rnd.int(ALPHABET.length)]).join('');

    it('the template parser never throws and never hangs on 5000 random inputs', () => {
      const t0 = Date.now();
      for (let i = 0; i < 5000; i++) {
        const s = `/${word(12)}`;
        const r = parseRouteTemplate(s);
        expect(typeof r === 'string' || Array.isArray(r.segments)).to.equal(true);
      }
      expect(Date.now() - t0).to.be.lessThan(5000);
    });

    it('the query parser and the matcher never throw on 5000 random inputs', () => {
      for (let i = 0; i < 5000; i++) {
        const q = parseQuery(word(16));
        expect(q.ok === true || typeof q.message === 'string').to.equal(true);
        const m = matcher.match(['GET', 'POST', 'PATCH'][rnd.int(3)]!, `/${word(10)}`);
        expect(['match', 'not_found', 'method_not_allowed']).to.include(m.kind);
        unescapePathValue(word(8), 'all');
      }
    });
  });
});
