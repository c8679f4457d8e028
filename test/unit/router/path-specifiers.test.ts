import { expect } from 'chai';
import { match, r, req, table, winner } from './fixtures.js';

describe('router: path specifiers', () => {
  it('path: matches the whole raw path exactly', () => {
    const t = table([r('p', { path: '/a/b' })]);
    expect(winner(t, '/a/b')).to.equal('p');
    expect(winner(t, '/a/b/')).to.equal(undefined);
    expect(winner(t, '/a/bc')).to.equal(undefined);
    expect(winner(t, '/A/b')).to.equal(undefined);
  });

  it('prefix: a string prefix, not segment-aligned', () => {
    const t = table([r('p', { prefix: '/api' })]);
    expect(winner(t, '/api')).to.equal('p');
    expect(winner(t, '/api/x')).to.equal('p');
    expect(winner(t, '/apix')).to.equal('p');
    expect(winner(t, '/ap')).to.equal(undefined);
  });

  it('template: literals and one-segment variables', () => {
    const t = table([r('t', { template: '/v1/shelves/{shelf}/books/{book}' })]);
    expect(match(t, '/v1/shelves/s1/books/b2')?.params).to.deep.equal({ shelf: 's1', book: 'b2' });
    expect(winner(t, '/v1/shelves/s1/books')).to.equal(undefined);
    expect(winner(t, '/v1/shelves/s1/books/b2/c')).to.equal(undefined);
    expect(winner(t, '/v1/shelves//books/b2'), 'a variable needs a non-empty segment').to.equal(undefined);
  });

  it('template: "*" matches one segment without capturing', () => {
    const t = table([r('t', { template: '/a/*/c' })]);
    expect(match(t, '/a/b/c')?.params).to.deep.equal({});
    expect(winner(t, '/a/b/x/c')).to.equal(undefined);
  });

  it('template: a sub-template variable captures the joined matched segments', () => {
    const t = table([r('t', { template: '/v1/{name=shelves/*/books/*}' })]);
    expect(match(t, '/v1/shelves/1/books/2')?.params).to.deep.equal({ name: 'shelves/1/books/2' });
    expect(winner(t, '/v1/shelves/1/tomes/2')).to.equal(undefined);
  });

  it('template: "**" matches zero or more trailing segments', () => {
    const t = table([r('t', { template: '/files/{path=**}' })]);
    expect(match(t, '/files/a/b/c')?.params).to.deep.equal({ path: 'a/b/c' });
    expect(match(t, '/files/a')?.params).to.deep.equal({ path: 'a' });
    expect(match(t, '/files')?.params).to.deep.equal({ path: '' });
    expect(match(t, '/files/')?.params).to.deep.equal({ path: '' });
    expect(match(t, '/files/a//b/')?.params, 'empty segments are kept, not normalised').to.deep.equal({ path: 'a//b/' });
    expect(winner(t, '/filesx')).to.equal(undefined);
  });

  it('template: "{x=a/*/b/**}" mixes literals and wildcards inside a variable', () => {
    const t = table([r('t', { template: '/{x=a/*/b/**}' })]);
    expect(match(t, '/a/1/b')?.params).to.deep.equal({ x: 'a/1/b' });
    expect(match(t, '/a/1/b/c/d')?.params).to.deep.equal({ x: 'a/1/b/c/d' });
    expect(winner(t, '/a/1/c')).to.equal(undefined);
  });

  it('template: the custom verb is matched against the last segment\'s suffix', () => {
    const t = table([r('t', { template: '/v1/{name=operations/*}:cancel' })]);
    expect(match(t, '/v1/operations/op1:cancel')?.params).to.deep.equal({ name: 'operations/op1' });
    expect(winner(t, '/v1/operations/op1')).to.equal(undefined);
    expect(winner(t, '/v1/operations/op1:cancelx')).to.equal(undefined);
    expect(winner(t, '/v1/operations/:cancel'), 'the variable still needs a non-empty segment').to.equal(undefined);
    expect(match(t, '/v1/operations/a:b:cancel')?.params, 'the verb follows the last ":"').to.deep.equal({
      name: 'operations/a:b',
    });
  });

  it('template: without a verb, a ":" is part of the segment', () => {
    const t = table([r('t', { template: '/v1/{name}' })]);
    expect(match(t, '/v1/op1:cancel')?.params).to.deep.equal({ name: 'op1:cancel' });
  });

  it('template: "**" with a verb stops before the verb', () => {
    const t = table([r('t', { template: '/v1/{rest=**}:undelete' })]);
    expect(match(t, '/v1/a/b:undelete')?.params).to.deep.equal({ rest: 'a/b' });
    expect(match(t, '/v1:undelete')?.params).to.deep.equal({ rest: '' });
  });

  it('template: "/" matches only the root', () => {
    const t = table([r('t', { template: '/' })]);
    expect(winner(t, '/')).to.equal('t');
    expect(winner(t, '/a')).to.equal(undefined);
    expect(winner(t, '//')).to.equal(undefined);
  });

  it('templates never match a path that does not start with "/"', () => {
    const t = table([r('t', { template: '/**' }), r('star', { path: '*' })]);
    expect(winner(t, '*')).to.equal('star');
    expect(winner(t, 'a/b')).to.equal(undefined);
  });

  it('regex: ECMAScript, anchored to the whole path', () => {
    const t = table([r('x', { regex: '/v[0-9]+/items' })]);
    expect(winner(t, '/v12/items')).to.equal('x');
    expect(winner(t, '/v12/items/1'), 'anchored at the end').to.equal(undefined);
    expect(winner(t, '/api/v12/items'), 'anchored at the start').to.equal(undefined);
  });

  it('regex: alternation cannot escape the anchors', () => {
    const t = table([r('x', { regex: '/a|/b' })]);
    expect(winner(t, '/a')).to.equal('x');
    expect(winner(t, '/b')).to.equal('x');
    expect(winner(t, '/ab')).to.equal(undefined);
    expect(winner(t, '/x/b')).to.equal(undefined);
  });

  it('matches the raw, still percent-encoded path and does not normalise "//", "." or ".."', () => {
    const t = table([r('p', { path: '/a%20b' }), r('dots', { path: '/a/../b' }), r('t', { template: '/x/{y}/z' })]);
    expect(winner(t, '/a%20b')).to.equal('p');
    expect(winner(t, '/a b')).to.equal(undefined);
    expect(winner(t, '/a/../b')).to.equal('dots');
    expect(winner(t, '/b')).to.equal(undefined);
    expect(match(t, '/x/../z')?.params).to.deep.equal({ y: '..' });
    expect(winner(t, '/x//y/z')).to.equal(undefined);
  });

  it('returns the same frozen result for a route without params', () => {
    const t = table([r('p', { prefix: '/' })]);
    const a = t.match(req('/a'));
    const b = t.match(req('/b'));
    expect(a).to.equal(b);
    expect(Object.isFrozen(a)).to.equal(true);
    expect(Object.isFrozen(a!.params)).to.equal(true);
  });
});
