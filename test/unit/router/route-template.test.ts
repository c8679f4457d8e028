import { expect } from 'chai';
import { parseRouteTemplate, type ParsedTemplate } from '../../../src/proxy/router/route-template.js';
import { validateRouteTemplate } from '../../../src/proxy/router/index.js';

function parsed(t: string): ParsedTemplate {
  const r = parseRouteTemplate(t);
  if (typeof r === 'string') throw new Error(`"${t}" did not parse: ${r}`);
  return r;
}

const kinds = (t: string) => parsed(t).segments.map((s) => (s.kind === 'literal' ? s.value : s.kind === 'single' ? '*' : '**'));

describe('router: route templates', () => {
  it('parses literals, variables, wildcards and sub-templates into segments', () => {
    expect(kinds('/v1/shelves/{shelf}/books/{book}')).to.deep.equal(['v1', 'shelves', '*', 'books', '*']);
    expect(kinds('/v1/{name=shelves/*/books/*}')).to.deep.equal(['v1', 'shelves', '*', 'books', '*']);
    expect(kinds('/a/*/{rest=b/**}')).to.deep.equal(['a', '*', 'b', '**']);
    expect(kinds('/**')).to.deep.equal(['**']);
  });

  it('records each variable as the range of segments it covers', () => {
    expect(parsed('/v1/{name=shelves/*/books/*}').captures).to.deep.equal([{ name: 'name', start: 1, end: 5 }]);
    expect(parsed('/x/{a}/{b.c=**}').captures).to.deep.equal([
      { name: 'a', start: 1, end: 2 },
      { name: 'b.c', start: 2, end: 3 },
    ]);
  });

  it('takes the custom verb after the last ":" of the last segment only', () => {
    expect(parsed('/v1/{name=books/*}:publish').verb).to.equal('publish');
    expect(kinds('/v1/{name=books/*}:publish')).to.deep.equal(['v1', 'books', '*']);
    expect(parsed('/a:b/c').verb).to.equal(undefined);
    expect(kinds('/a:b/c')).to.deep.equal(['a:b', 'c']);
    expect(parsed('/a/x:y:z').verb).to.equal('z');
    expect(kinds('/a/x:y:z')).to.deep.equal(['a', 'x:y']);
    expect(parsed('/{name=a/b:c}').verb, 'a ":" inside braces is literal').to.equal(undefined);
  });

  it('treats "/" as the root, an empty literal segment', () => {
    expect(kinds('/')).to.deep.equal(['']);
  });

  const invalid: Array<[string, RegExp]> = [
    ['', /must start with "\/"/],
    ['v1/a', /must start with "\/"/],
    ['/a//b', /empty segment/],
    ['/a/', /empty segment/],
    ['/**/a', /"\*\*" must be the last segment/],
    ['/{x=**}/a', /"\*\*" must be the last segment/],
    ['/{x={y}}', /nested variables/],
    ['/{x=a/{y}}', /nested variables/],
    ['/{x', /unclosed "\{"/],
    ['/x}', /unmatched "\}"/],
    ['/{}', /variable without a name/],
    ['/{1x}', /invalid variable name/],
    ['/{a.}', /invalid variable name/],
    ['/{a}/{a}', /appears twice/],
    ['/{a=}', /empty sub-template/],
    ['/{a}b', /mixes a variable with literal text/],
    ['/a*', /"\*" must be a whole segment/],
    ['/a:', /empty custom verb/],
    ['/a:b*', /invalid custom verb/],
    ['/a b', /invalid character/],
    ['/{__proto__}', /reserved/],
    ['/:go', /at least one segment/],
    [`/${Array.from({ length: 65 }, () => 'a').join('/')}`, /more than 64 segments/],
  ];
  for (const [t, why] of invalid) {
    it(`rejects ${JSON.stringify(t.length > 30 ? `${t.slice(0, 30)}…` : t)}`, () => {
      const msg = validateRouteTemplate(t);
      expect(msg).to.be.a('string');
      expect(msg).to.match(why);
    });
  }

  it('validateRouteTemplate returns undefined for valid templates', () => {
    for (const t of ['/', '/a', '/{a}', '/a/{b=c/*/d/**}:e', '/v1/projects/p:1/x', '/a/%20b']) {
      expect(validateRouteTemplate(t), t).to.equal(undefined);
    }
  });
});
